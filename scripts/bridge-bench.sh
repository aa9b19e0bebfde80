#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Latency across the NATS bridge beside NATS alone, in one run (a
# benchmark, not a test): one nats-server and two brokers ("hosts" A and B)
# with a bridge each on 127.0.0.1, then
#   - zcbus-bridge-bench: round trips A -> bridge -> NATS -> bridge -> B and
#     back, and the same round trip through NATS alone (two libnats
#     connections to the same server), at each size;
#   - zcbus lat on A twice, on a topic the bridge does not forward and on
#     one it does (a subscriber of its own): the local path with and
#     without the bridge.
# Usage: scripts/bridge-bench.sh [BUILD_DIR] [zcbus-bridge-bench args...]
# e.g.   scripts/bridge-bench.sh build/plain -n 5000 --size 64,64K
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build/plain}" && pwd)
[ $# -gt 0 ] && shift
nats_server=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$build/zcbus-bridge" ] || { echo "bridge-bench: no zcbus-bridge in $build (libnats missing?)" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/zcbus-bridge-bench.XXXXXX")
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        if [ -n "${KEEP:-}" ]; then echo "bridge-bench: logs kept in $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$nats_server" -a 127.0.0.1 -p "$port" -js -sd "$dir/js" >"$dir/nats.log" 2>&1 &
pids+=($!)
ready() { # ready FIFO: wait for its READY
        local r=
        read -r -t 30 r <"$1"
        [ "$r" = READY ] || { echo "bridge-bench: ${1##*/} did not start" >&2; tail "$dir"/*.log >&2; exit 1; }
}
for h in A B; do
        mkfifo "$dir/$h.bready"
        "$build/zcbusd" -f -s "$dir/$h.sock" --ready-fd 3 3>"$dir/$h.bready" >"$dir/$h.broker.log" 2>&1 &
        pids+=($!)
        ready "$dir/$h.bready"
done
# start_bridges ASAP: (re)start both bridges with send_asap = ASAP.
bridge_pids=()
start_bridges() {
        for p in "${bridge_pids[@]}"; do kill "$p"; wait "$p" || true; done
        bridge_pids=()
        printf 'nats = nats://127.0.0.1:%s\nstate_dir = %s/A.state\nscan_ms = 50\nsend_asap = %s\nout = bench.ping\nin = bench.pong\nout = lab.on.>\nout = bench.tput\nout = bench.tputb batch\nout = bench.rel\n' \
                "$port" "$dir" "$1" >"$dir/A.conf"
        printf 'nats = nats://127.0.0.1:%s\nstate_dir = %s/B.state\nscan_ms = 50\nsend_asap = %s\nin = bench.ping\nout = bench.pong\nin = bench.tput slots=4096\nin = bench.tputb slots=4096\nin = bench.rel reliable slots=4096\n' \
                "$port" "$dir" "$1" >"$dir/B.conf"
        for h in A B; do
                rm -f "$dir/$h.ready"
                mkfifo "$dir/$h.ready"
                "$build/zcbus-bridge" -c "$dir/$h.conf" -s "$dir/$h.sock" --ready-fd 3 3>"$dir/$h.ready" \
                        >>"$dir/$h.bridge.log" 2>&1 &
                bridge_pids+=($!)
                pids+=($!)
                ready "$dir/$h.ready"
        done
}
bench() {
        "$build/zcbus-bridge-bench" --nats "nats://127.0.0.1:$port" --bus-a "$dir/A.sock" --bus-b "$dir/B.sock" "$@"
}
start_bridges yes
echo "== round trips, send_asap = yes (the default), NATS alone with SendAsap too"
bench --asap "$@"
echo "== the local path on A: a topic the bridge does not forward, then one it forwards (one subscriber more)"
"$build/zcbus" -s "$dir/A.sock" lat -n 100000 --warmup 10000 --policy latest --prefix lab.off | grep -Ev '^ratio'
"$build/zcbus" -s "$dir/A.sock" lat -n 100000 --warmup 10000 --policy latest --prefix lab.on | grep -Ev '^ratio'
"$build/zcbus-bridge" -c "$dir/A.conf" --stats | grep -E '^(forwarded|dropped|loops)'
echo "== throughput, send_asap = yes: core NATS alone, JetStream alone (one ack at a time, pipelined, and pipelined end to end through a consumer), the bridges"
bench --asap --tput "${TPUT:-200000}" --size 64,64K
start_bridges no
echo "== round trips, send_asap = no (libnats batches; its flusher sleeps 1 ms), NATS alone the same"
bench "$@"
echo "== throughput, send_asap = no"
bench --tput "${TPUT:-200000}" --size 64,64K
