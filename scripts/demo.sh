#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo.sh: zcbus in one command. Installs what the build needs (if
# missing), builds into build/plain, then starts a private broker on a
# temporary socket, subscribes, publishes, lists the topics, measures
# round-trip latency against Unix sockets, pipes and raw shared memory, and
# stops the broker.
#
# Nothing sleeps to wait for anything: the broker and the subscriber each
# write READY on a fifo (--ready-fd) once they are listening / subscribed.
# The broker and the subscriber are killed and the temporary directory
# removed on every exit path.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '$ %s\n' "$*"; }
die() { printf 'demo.sh: %s\n' "$*" >&2; exit 1; }

step "1/7 Installing build dependencies (only what is missing)"
scripts/deps.sh
echo "ok"

step "2/7 Building zcbus into build/plain"
scripts/build.sh build/plain --enable-werror
bin=$top/build/plain
PATH=$bin:$PATH
echo "built $bin/zcbusd and $bin/zcbus"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/zcbus-demo.XXXXXX")
broker=
sub=
cleanup() {
        for p in $sub $broker; do
                kill "$p" 2>/dev/null || true
        done
        for p in $sub $broker; do
                wait "$p" 2>/dev/null || true
        done
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "3/7 Starting a private broker on $tmp/bus.sock"
export ZCBUS_SOCKET=$tmp/bus.sock
mkfifo "$tmp/broker.ready" "$tmp/sub.ready"
show "zcbusd -f -s \$ZCBUS_SOCKET --ready-fd 3 3>$tmp/broker.ready &"
zcbusd -f -s "$ZCBUS_SOCKET" --ready-fd 3 3>"$tmp/broker.ready" 2>"$tmp/zcbusd.log" &
broker=$!
ready=
read -r ready <"$tmp/broker.ready" || true
if [ "$ready" != READY ]; then
        cat "$tmp/zcbusd.log" >&2
        die "zcbusd did not get ready"
fi
cat "$tmp/zcbusd.log"

step "4/7 Subscribing to 'demo' in the background, then publishing 3 messages"
# -t: a safety net only; the subscriber exits as soon as it has 3 messages.
show "zcbus sub demo -n 3 -t 10000 --ready-fd 3 3>$tmp/sub.ready >$tmp/sub.out &"
zcbus sub demo -n 3 -t 10000 --ready-fd 3 3>"$tmp/sub.ready" >"$tmp/sub.out" &
sub=$!
ready=
read -r ready <"$tmp/sub.ready" || true
[ "$ready" = READY ] || die "the subscriber did not get ready"
show "zcbus pub demo 'hello' 'zero-copy' 'world'"
zcbus pub demo 'hello' 'zero-copy' 'world'
wait "$sub" || die "the subscriber failed (exit status $?)"
sub=
echo "the subscriber printed:"
sed 's/^/    /' "$tmp/sub.out"

step "5/7 The broker's topics"
show "zcbus list"
zcbus list

step "6/7 Round-trip latency: zcbus against Unix sockets, pipes and raw shared memory"
show "zcbus lat -n 20000 --warmup 2000 --baseline uds,pipe,shm"
zcbus lat -n 20000 --warmup 2000 --baseline uds,pipe,shm

step "7/7 Stopping the broker (SIGTERM)"
show "kill -TERM $broker"
kill -TERM "$broker"
status=0
wait "$broker" || status=$?
broker=
tail -n 2 "$tmp/zcbusd.log"
[ "$status" -eq 0 ] || die "zcbusd exited with status $status"
[ ! -e "$ZCBUS_SOCKET" ] || die "zcbusd left its socket behind"
echo "zcbusd exited cleanly and removed its socket."

printf '\nDone. Next: README.md, zcbus(1), zcbusd(8), zcbus_pub_open(3), zcbus_sub_open(3).\n'
