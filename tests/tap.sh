# SPDX-License-Identifier: MIT
# tap.sh: what the shell tests share, sourced by them: TAP reporting (ok,
# not_ok, finish), a work directory cleaned up at exit with the test's
# broker and background processes (tap_workdir), and the signal traps that
# make an interrupted test run its EXIT trap. Counters start at zero.
passed=0
failed=0
n=0

ok() {
        n=$((n + 1))
        passed=$((passed + 1))
        echo "ok $n - $1"
}

# not_ok DESCRIPTION [FILE...]: the end of each file is shown as
# diagnostics.
not_ok() {
        n=$((n + 1))
        failed=$((failed + 1))
        echo "not ok $n - $1"
        shift
        for f in "$@"; do
                [ -f "$f" ] || continue
                echo "# --- $(basename "$f"):"
                tail -n 25 "$f" | sed 's/^/#   /'
        done
}

finish() {
        echo "$passed passed, $failed failed"
        [ "$failed" -eq 0 ] || exit 1
        exit 0
}

# tap_workdir NAME: a fresh $dir (with $sock inside it for a broker),
# removed at exit after every pid in $broker_pid and $bg_pids is killed
# and reaped (a test that reaps one itself takes it off the list).
tap_workdir() {
        dir=$(mktemp -d "${TMPDIR:-/tmp}/zcbus-$1.XXXXXX") || exit 99
        sock=$dir/bus.sock
        broker_pid=
        bg_pids=
        trap tap_cleanup EXIT
}

tap_cleanup() {
        for p in $bg_pids $broker_pid; do
                kill -KILL "$p" 2>/dev/null
        done
        for p in $bg_pids $broker_pid; do
                wait "$p" 2>/dev/null
        done
        rm -rf "$dir"
}

trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
