#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Chaos soak: scripts/soak.sh [SECONDS] [SEED] [soak options...]
# tests/soak starts a private broker, producers and subscribers on a
# reliable and a latest topic, kills producers and subscribers with SIGKILL
# at random instants (seeded; the seed is printed) and restarts them, and
# checks that no survivor stalls or loses a committed message, and that
# nothing is left behind. SECONDS defaults to 300; 20 makes a short check.
# Uses the build in $ZCBUS_BUILD (default build/plain; made if missing).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-300}
seed=${2:-}
shift $(($# > 2 ? 2 : $#))
build=${ZCBUS_BUILD:-$top/build/plain}
[ -x "$build/zcbusd" ] || "$top/scripts/build.sh" "$build" --enable-werror
make -C "$build" -s tests/soak
dir=$(mktemp -d /tmp/zcbus-soak.XXXXXX)
cleanup() { rm -rf "$dir"; }
trap cleanup EXIT
# tests/soak's own checks bound every wait; this only catches a call that
# breaks its deadline. Its children die with it (PR_SET_PDEATHSIG).
status=0
timeout -s KILL $((${secs%.*} + 120)) \
        "$build/tests/soak" --broker "$build/zcbusd" --socket "$dir/bus.sock" --seconds "$secs" \
        ${seed:+--seed "$seed"} "$@" || status=$?
if [ "$status" -eq 137 ]; then
        echo "soak.sh: tests/soak overran its time and was killed" >&2
fi
# The broker's clean shutdown removes its socket: nothing else was ever here.
if [ -n "$(ls -A "$dir")" ]; then
        echo "soak.sh: left behind in $dir: $(ls -A "$dir")" >&2
        status=1
fi
exit "$status"
