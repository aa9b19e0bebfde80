# SPDX-License-Identifier: MIT
# tap.sh: what the shell tests share, sourced by them: TAP reporting (ok,
# not_ok, finish) and the signal traps that make an interrupted test run
# its EXIT trap (each test sets its own cleanup). Counters start at zero.
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

trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
