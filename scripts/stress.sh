#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Bounded stress run: scripts/stress.sh [SECONDS] [PRODUCERS] [SUBSCRIBERS]
# Starts a private broker and runs tests/stress (multi-process, reliable and
# latest phases, order / gap / duplicate / torn-read / lost accounting checks).
# Uses the build in $ZCBUS_BUILD (default build/plain; made if missing).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
build=${ZCBUS_BUILD:-$top/build/plain}
[ -x "$build/zcbusd" ] || "$top/scripts/build.sh" "$build" --enable-werror
make -C "$build" -s tests/stress
dir=$(mktemp -d /tmp/zcbus-stress.XXXXXX)
cleanup() { [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
mkfifo "$dir/ready"
"$build/zcbusd" -f -s "$dir/bus.sock" --ready-fd 3 3>"$dir/ready" &
bpid=$!
read -r _ <"$dir/ready"
"$build/tests/stress" "$dir/bus.sock" "$secs" "${2:-3}" "${3:-4}"
