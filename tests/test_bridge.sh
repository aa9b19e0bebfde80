#!/bin/sh
# SPDX-License-Identifier: MIT
# test_bridge.sh: zcbus-bridge end to end, on real servers, loopback only.
#
# It starts a 3-node nats-server cluster (routes and JetStream, each node on
# 127.0.0.1 with its store in the temp dir) and three zcbusd "hosts" A, B
# and C, each with its own socket and its own bridge, then checks:
#   - a latest topic of A reaches subscribers on B and C, in order, bytes
#     checked;
#   - a topic bridged both ways (A and B each publish, C listens) arrives
#     exactly once everywhere: no loop, no duplicate;
#   - reliable topics: kill -9 of A's bridge, of B's bridge, and of the
#     NATS node A's bridge is connected to, each mid-stream: after the
#     restart every message arrives exactly once, in order, on B and C;
#   - the same from a fourth host D whose bridge withholds every fifth
#     JetStream publish until the rest of its window has gone
#     (test_withhold), so that the stream holds messages after their
#     successors: B and C put them back in order (they count what they
#     held), also with D's bridge, then B's, killed mid-stream;
#   - forged origin headers stored in a stream D receives: a predecessor
#     that never comes is given up on (counted) and what was held is
#     delivered in order, one arriving after that is dropped as late, a
#     PREV not below SEQ makes the header no origin, a flood of held
#     messages is bounded by D's reorder buffer, a repeat is a duplicate;
#   - a latest topic flooded on A: the producer never waits (pub -t 0
#     succeeds), the bridge drops and counts;
#   - a message above the servers' max_payload (64 KiB here) is not sent,
#     is counted as oversize, and what follows still is;
#   - a topic bridged both ways under reliable (one stream, two origins)
#     arrives exactly once everywhere, also when one side's bridge is
#     killed mid-stream (its echo windows outlive it);
#   - bad config lines fail with FILE:LINE and the reason;
#   - with the whole cluster killed (last), a reliable producer is held
#     back only until the broker evicts the bridge, which counts it.
# Run by `make check` with ZCBUS_BRIDGE, ZCBUSD and ZCBUS_CLI set; exits
# 77 (skip) without the bridge (no libnats at configure) or nats-server.
#
# Nothing sleeps to wait for startup: brokers and bridges say READY on a
# fifo, and every other wait polls for its condition with a deadline.
# Every process is killed on every exit path (trap EXIT).

# The checks are strings eval'd by check(), hence SC2016.
# shellcheck disable=SC2016

[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
# ok, not_ok, finish and the signal traps
. "$(dirname "$0")/tap.sh"

if [ -z "${ZCBUS_BRIDGE:-}" ] || [ ! -x "${ZCBUS_BRIDGE}" ]; then
        echo "SKIP: zcbus-bridge not built (no libnats, or configure --disable-bridge)"
        exit 77
fi
NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
if [ ! -x "$NATS_SERVER" ]; then
        echo "SKIP: nats-server not installed (Debian: apt-get install nats-server)"
        exit 77
fi
if ! command -v python3 >/dev/null 2>&1; then
        echo "SKIP: python3 is needed to read the bridge's JSON counters"
        exit 77
fi
if [ -z "${ZCBUSD:-}" ] || [ -z "${ZCBUS_CLI:-}" ]; then
        echo "SKIP: ZCBUSD and ZCBUS_CLI must name the built zcbusd and zcbus"
        exit 77
fi
if [ -z "${ZCBUS_BRIDGE_FORGE:-}" ] || [ ! -x "${ZCBUS_BRIDGE_FORGE}" ]; then
        echo "SKIP: ZCBUS_BRIDGE_FORGE must name the built tests/test_bridge_forge"
        exit 77
fi

SCALE=${ZCBUS_TEST_SCALE:-1}
T=$((30000 * SCALE))    # ms: safety net of background subscribers
WAIT=$((40 * SCALE))    # s: deadline of every wait
# Under ASan, a small quarantine: the bounded-buffer check reads the
# bridge's private memory, which would otherwise hold up to 256 MiB that
# the bridge freed.
[ -n "${ASAN_OPTIONS:-}" ] && export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=16"

dir=$(mktemp -d "${TMPDIR:-/tmp}/zcbus-bridge.XXXXXX") || exit 99
declare -A pid

cleanup() {
        for p in "${pid[@]}"; do
                kill -KILL "$p" 2>/dev/null
        done
        for p in "${pid[@]}"; do
                wait "$p" 2>/dev/null
        done
        rm -rf "$dir"
}
trap cleanup EXIT

# check DESCRIPTION CONDITION [FILES...]: files shown on failure.
check() {
        desc=$1
        cond=$2
        shift 2
        if eval "$cond"; then
                ok "$desc"
        else
                not_ok "$desc" "$@"
        fi
}

# wait_until CONDITION: poll (10 Hz) until it holds or $WAIT s pass.
wait_until() {
        local deadline=$((SECONDS + WAIT))
        while ! eval "$1"; do
                [ "$SECONDS" -lt "$deadline" ] || return 1
                sleep 0.1
        done
}

# ---- the servers -------------------------------------------------------------

read -r P1 P2 P3 R1 R2 R3 < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')

routes="nats-route://127.0.0.1:$R1, nats-route://127.0.0.1:$R2, nats-route://127.0.0.1:$R3"
for i in 1 2 3; do
        eval "port=\$P$i rport=\$R$i"
        cat >"$dir/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:$port
max_payload: 65536
jetstream { store_dir: "$dir/js$i", max_memory_store: 64MB, max_file_store: 1GB }
cluster { name: zcbus-test, listen: 127.0.0.1:$rport, routes: [ $routes ] }
EOF
done

start_nats() {
        "$NATS_SERVER" -c "$dir/n$1.conf" >>"$dir/n$1.log" 2>&1 </dev/null &
        pid[n$1]=$!
}

start_broker() {
        mkfifo "$dir/$1.bready" || exit 99
        # Topics stall.* give up on a stalled subscriber after 1 s.
        echo "stall = stall.* 1000" >"$dir/$1.broker.conf"
        "$ZCBUSD" -f -s "$dir/$1.sock" -c "$dir/$1.broker.conf" --ready-fd 3 3>"$dir/$1.bready" \
                >"$dir/$1.broker.log" 2>&1 </dev/null &
        pid[broker$1]=$!
        local ready=
        read -r -t "$WAIT" ready <"$dir/$1.bready"
        rm -f "$dir/$1.bready"
        [ "$ready" = READY ]
}

# start_bridge HOST: with $dir/HOST.conf; true once it says READY.
start_bridge() {
        local f=$dir/$1.ready ready=
        rm -f "$f"
        mkfifo "$f" || exit 99
        "$ZCBUS_BRIDGE" -c "$dir/$1.conf" -s "$dir/$1.sock" --ready-fd 3 3>"$f" \
                >>"$dir/$1.bridge.log" 2>&1 </dev/null &
        pid[bridge$1]=$!
        read -r -t "$WAIT" ready <"$f"
        rm -f "$f"
        [ "$ready" = READY ]
}

kill9() {
        kill -KILL "${pid[$1]}" 2>/dev/null
        wait "${pid[$1]}" 2>/dev/null
        unset "pid[$1]"
}

kill_restart_bridge() {
        kill9 "bridge$1"
        start_bridge "$1" || not_ok "bridge $1 restarts" "$dir/$1.bridge.log"
}

# stat HOST EXPR: EXPR over the bridge's counters as a dict s, printed.
stat() {
        "$ZCBUS_BRIDGE" -c "$dir/$1.conf" --stats --json 2>/dev/null |
                python3 -c 'import json, sys
s = json.load(sys.stdin)
out = {t["topic"]: t for t in s["out"]}
inn = {t["pattern"]: t for t in s["in"]}
print(eval(sys.argv[1]))' "$2" 2>/dev/null
}

# routed HOST TOPIC: the bridge of HOST forwards TOPIC (its scan saw it).
routed() {
        [ "$(stat "$1" "'$2' in out")" = True ]
}

cli() {
        local host=$1
        shift
        "$ZCBUS_CLI" -s "$dir/$host.sock" "$@"
}

# start_sub NAME HOST SUB-ARGS...: a background zcbus sub, output in
# $dir/NAME.out; returns once subscribed.
start_sub() {
        local name=$1 host=$2 ready=
        shift 2
        mkfifo "$dir/$name.sready" || return 1
        "$ZCBUS_CLI" -s "$dir/$host.sock" sub "$@" --ready-fd 3 3>"$dir/$name.sready" \
                >"$dir/$name.out" 2>"$dir/$name.err" </dev/null &
        pid[sub$name]=$!
        read -r -t "$WAIT" ready <"$dir/$name.sready"
        rm -f "$dir/$name.sready"
        [ "$ready" = READY ]
}

# end_sub NAME: wait for it; status in $sub_rc.
end_sub() {
        wait "${pid[sub$1]}" 2>/dev/null
        sub_rc=$?
        unset "pid[sub$1]"
}

lines() {
        echo $(($(wc -l <"$1" 2>/dev/null || echo 0)))
}

# expected_sized N SIZE: what `zcbus pub --size SIZE -n N` sends, a line each.
expected_sized() {
        python3 -c 'import sys
n, size = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    s = str(i)
    print(s + "x" * (size - len(s)))' "$1" "$2"
}

# ---- bad config: no server needed -----------------------------------------------

bad_config() {
        local line=$1 text=$2 want=$3
        {
                echo "# a bridge"
                echo "scan_ms = 100"
                echo "$text"
        } >"$dir/bad.conf"
        "$ZCBUS_BRIDGE" -c "$dir/bad.conf" --state-dir "$dir/bad.state" >"$dir/bad.out" 2>"$dir/bad.err" </dev/null
        local rc=$?
        check "bad config '$text': exit 1 with $dir/bad.conf:$line and the reason" \
                '[ "$rc" -eq 1 ] && [ "$(lines "$dir/bad.err")" -eq 1 ] &&
                 grep -q "zcbus-bridge: $dir/bad.conf:$line: .*$want" "$dir/bad.err"' "$dir/bad.err"
}
bad_config 3 "frobnicate = 1" "unknown key 'frobnicate'"
bad_config 3 "out = cam..front" "empty token"
bad_config 3 "out = cam.fr*nt" "must be a whole token"
bad_config 3 "in = a.>.b" "'>' must be the last token"
bad_config 3 "in = cam.* reliable" "reliable route names one topic"
bad_config 3 "in = cam sometimes" "unknown word 'sometimes'"
bad_config 3 "replicas = 9" "'replicas': '9' is not a number from 1 to 5"
bad_config 3 "prefix = a.*" "'prefix'"
bad_config 3 "out cam" "expected 'key = value'"
bad_config 3 "nats = tcp://x" "not a nats://HOST:PORT URL"
bad_config 3 "bus_id = nope" "not a uuid"
bad_config 3 "window = 0" "'window': '0' is not a number from 1 to 65536"
bad_config 3 "reorder_ms = 1" "'reorder_ms': '1' is not a number from 10 to 3600000"

"$ZCBUS_BRIDGE" -c "$dir/none.conf" >"$dir/bad.out" 2>"$dir/bad.err" </dev/null
rc=$?
check "a missing config file: exit 1 naming it" \
        '[ "$rc" -eq 1 ] && grep -q "none.conf: No such file" "$dir/bad.err"' "$dir/bad.err"
"$ZCBUS_BRIDGE" --bogus >"$dir/bad.out" 2>"$dir/bad.err" </dev/null
rc=$?
check "an unknown option: usage error, exit 2" '[ "$rc" -eq 2 ] && [ "$(lines "$dir/bad.err")" -eq 1 ]' "$dir/bad.err"

# ---- start everything ---------------------------------------------------------------

for i in 1 2 3; do
        start_nats $i
done
for h in A B C D; do
        if ! start_broker $h; then
                not_ok "zcbusd $h starts" "$dir/$h.broker.log"
                finish
        fi
done

common() {
        cat <<EOF
nats = $1
state_dir = $dir/$2.state
replicas = 3
scan_ms = 50
stats_ms = 200
EOF
}
{
        common "nats://127.0.0.1:$P1, nats://127.0.0.1:$P2, nats://127.0.0.1:$P3" A
        cat <<EOF
out = fan.*       # latest fan-out to B and C
out = bat.* batch # the same, what waits together in one NATS message
out = rel.*       # reliable ones
out = both        # both ways with B
in = both
in = rel.both reliable
in = rel.bk reliable
out = flood
out = big.*
out = stall.*
EOF
} >"$dir/A.conf"
{
        common "nats://127.0.0.1:$P2, nats://127.0.0.1:$P3, nats://127.0.0.1:$P1" B
        cat <<EOF
in = fan.>
in = bat.>
in = rel.k reliable
in = rel.n reliable
in = rel.m reliable
in = both
out = both
in = rel.both reliable
out = rel.both
in = rel.bk reliable
out = rel.bk
in = flood
in = big.>
in = rel.w reliable
in = rel.v reliable
EOF
} >"$dir/B.conf"
{
        # (credentials the servers do not ask for: they must not be shown)
        common "nats://bridgeuser:S3cretPw@127.0.0.1:$P3, nats://bridgeuser:S3cretPw@127.0.0.1:$P1, nats://bridgeuser:S3cretPw@127.0.0.1:$P2" C
        cat <<EOF
in = fan.>
in = bat.>
in = rel.k reliable
in = rel.n reliable
in = rel.m reliable
in = both
in = rel.both reliable
in = rel.bk reliable
in = rel.w reliable
in = rel.v reliable
EOF
} >"$dir/C.conf"
# D withholds every 5th publish's first try (a window of 16: what B and C
# hold stays well inside their reorder buffers, 4096 by default), and
# receives the forged stream with a reorder buffer of 8 that gives up
# after 1 s.
{
        common "nats://127.0.0.1:$P1, nats://127.0.0.1:$P2, nats://127.0.0.1:$P3" D
        cat <<EOF
out = rel.w
out = rel.v
window = 16
test_withhold = 5
in = forge.x reliable
reorder = 8
reorder_ms = 1000
EOF
} >"$dir/D.conf"

for h in A B C D; do
        if start_bridge $h; then
                ok "bridge $h connects to the cluster and says READY"
        else
                not_ok "bridge $h connects to the cluster and says READY" "$dir/$h.bridge.log" "$dir/n1.log"
                finish
        fi
done

# ---- latest: A -> B and C, in order, bytes checked --------------------------------------

# fan_latest NAME TOPIC N SIZE SLOTS: subscribers on B and C, N messages of
# SIZE published on A; the subscribers' status in rcB and sub_rc, what
# they should have got in $dir/NAME.expected.
fan_latest() {
        start_sub "$1B" B "$2" --policy latest --slots "$5" -n "$3" -t "$T" &&
                start_sub "$1C" C "$2" --policy latest --slots "$5" -n "$3" -t "$T" &&
                cli A sub "$2" --policy latest --slots "$5" -t 0 >/dev/null 2>&1
        wait_until "routed A $2"
        cli A pub --policy latest --slots "$5" --size "$4" -n "$3" "$2"
        end_sub "$1B"
        rcB=$sub_rc
        end_sub "$1C"
        expected_sized "$3" "$4" >"$dir/$1.expected"
}

N=200
fan_latest fan fan.t $N 32 1024
check "latest: $N messages from A reach B in order, bytes intact" \
        '[ "$rcB" -eq 0 ] && cmp -s "$dir/fan.expected" "$dir/fanB.out"' "$dir/fanB.err" "$dir/B.bridge.log"
check "latest: ... and C" \
        '[ "$sub_rc" -eq 0 ] && cmp -s "$dir/fan.expected" "$dir/fanC.out"' "$dir/fanC.err" "$dir/C.bridge.log"

# Batched: a burst goes as fewer NATS messages, each record delivered in
# order and whole on B and C.
NB=3000
fan_latest bat bat.t $NB 100 4096
wait_until '[ "$(stat A "out[\"bat.t\"][\"forwarded\"] >= $NB")" = True ]'
check "batch: $NB latest messages from A reach B and C in order, bytes intact, $(stat A 'out["bat.t"]["batches"]') NATS messages carrying several" \
        '[ "$rcB" -eq 0 ] && [ "$sub_rc" -eq 0 ] && cmp -s "$dir/bat.expected" "$dir/batB.out" &&
         cmp -s "$dir/bat.expected" "$dir/batC.out" &&
         [ "$(stat A "out[\"bat.t\"][\"batches\"] > 0 and out[\"bat.t\"][\"forwarded\"] == $NB")" = True ]' \
        "$dir/batB.err" "$dir/batC.err" "$dir/A.bridge.log" "$dir/B.bridge.log"

# ---- the bridge in zcbus stat, on either side ---------------------------------------

# bus_view HOST TOPIC EXPR: EXPR over `zcbus stat --json TOPIC` on HOST,
# with b the bridge's own peer entry (its label and counters), printed.
bus_view() {
        cli "$1" stat --json "$2" 2>/dev/null | python3 -c 'import json, sys
d = json.load(sys.stdin)
bs = [p for p in d["peers"] if p["label"].startswith("nats bridge ")]
b = bs[0] if len(bs) == 1 else None
e = {x["session"]: x for x in d["entries"]}
print(eval("(" + sys.argv[1] + ")"))' "$3" 2>/dev/null
}
# The bridges tell their brokers every stats_ms (200 here): wait for it.
wait_until '[ "$(bus_view A fan.t "b[\"counters\"][\"forwarded\"] >= $N")" = True ]'
check "zcbus stat on A shows its bridge, a subscriber of the topic, with what it forwarded" \
        '[ "$(bus_view A fan.t "b[\"subscribers\"] >= 1 and e[b[\"session\"]][\"role\"] == \"sub\" and
                b[\"counters\"][\"forwarded\"] >= $N and \"127.0.0.1\" in b[\"label\"] and
                b[\"comm\"] == \"zcbus-bridge\"")" = True ]'
wait_until '[ "$(bus_view B fan.t "b[\"counters\"][\"received\"] >= $N")" = True ]'
check "zcbus stat on B shows its bridge, the topic's producer there, with what it received" \
        '[ "$(bus_view B fan.t "e[b[\"session\"]][\"role\"] == \"pub\" and b[\"counters\"][\"received\"] >= $N and
                all(k in b[\"counters\"] for k in (\"dropped\", \"duplicates\", \"nats_reconnects\", \"reorder_gaps\", \"late\"))")" = True ]'
wait_until 'cli C peers | grep -q " nats bridge "'
cli C peers >"$dir/peersC.out" 2>&1
check "zcbus peers shows C's bridge with its server's URL but not the password in it" \
        'grep -Eq " nats bridge nats://127.0.0.1:[0-9]+ as " "$dir/peersC.out" && ! grep -q S3cretPw "$dir/peersC.out" &&
         ! grep -q S3cretPw "$dir/C.state/stats.json"' "$dir/peersC.out"
cli A stat fan.t >"$dir/statA.out" 2>&1
check "zcbus stat's table names the bridge and its counters" \
        'grep -q "^what these sessions say about themselves:" "$dir/statA.out" &&
         grep -q " nats bridge nats://127.0.0.1:" "$dir/statA.out" && grep -Eq "^    forwarded=[0-9]+ received=" "$dir/statA.out"' \
        "$dir/statA.out"

# ---- both ways: A <-> B on one topic, C listening ------------------------------------

# Each subscriber stops at the count it is due; "nothing more" is checked
# on the bridges' counters, which count what comes in whether or not a
# subscriber is still there to see it.
# both_ways TOPIC N SUB-OPTS...: A and B publish N each (aI and bI) once
# both bridges forward TOPIC; subscribers on A, B and C must get the 2N.
both_ways() {
        local t=$1 count=$2
        shift 2
        cli A sub "$t" "$@" -t 0 >/dev/null 2>&1
        cli B sub "$t" "$@" -t 0 >/dev/null 2>&1
        wait_until "routed A $t && routed B $t"
        for h in A B C; do
                start_sub "$t.$h" $h "$t" "$@" -n $((2 * count)) -t "$T" || not_ok "sub $t on $h"
        done
        seq -f 'a%g' 0 $((count - 1)) >"$dir/$t.a"
        seq -f 'b%g' 0 $((count - 1)) >"$dir/$t.b"
        "$ZCBUS_CLI" -s "$dir/A.sock" pub "$@" "$t" <"$dir/$t.a" &
        pub_a=$!
        "$ZCBUS_CLI" -s "$dir/B.sock" pub "$@" "$t" <"$dir/$t.b"
        wait $pub_a
}

# both_ways_check TOPIC N WHAT: each subscriber got the 2N once, each
# producer's in order.
both_ways_check() {
        local t=$1 count=$2 what=$3 h
        for h in A B C; do
                end_sub "$t.$h"
                grep '^a' "$dir/$t.$h.out" >"$dir/$t.$h.a"
                grep '^b' "$dir/$t.$h.out" >"$dir/$t.$h.b"
                check "$what: $h gets A's $count and B's $count, each once and in order" \
                        '[ "$sub_rc" -eq 0 ] && cmp -s "$dir/$t.a" "$dir/$t.$h.a" && cmp -s "$dir/$t.b" "$dir/$t.$h.b"' \
                        "$dir/$t.$h.out" "$dir/$t.$h.err" "$dir/$h.bridge.log"
        done
}

both_ways both 50 --policy latest --slots 1024
both_ways_check both 50 "both ways"
wait_until '[ "$(stat C "inn[\"both\"][\"received\"]")" = 100 ]'
check "both ways: nothing more: A and B forwarded their own 50 only, C received 100, A and B the other's 50" \
        '[ "$(stat A "out[\"both\"][\"forwarded\"], inn[\"both\"][\"received\"]")" = "(50, 50)" ] &&
         [ "$(stat B "out[\"both\"][\"forwarded\"], inn[\"both\"][\"received\"]")" = "(50, 50)" ] &&
         [ "$(stat C "inn[\"both\"][\"received\"]")" = 100 ]'
check "both ways: A dropped B's 50 as echoes" '[ "$(stat A "s[\"loops\"] >= 50")" = True ]'

# ---- both ways, reliable: one stream, two origins ----------------------------------

both_ways rel.both 200 --slots 1024
both_ways_check rel.both 200 "reliable both ways"
wait_until '[ "$(stat C "inn[\"rel.both\"][\"received\"]")" = 400 ]'
check "reliable both ways: nothing more: each side stored its own 200, C received 400, A and B the other's 200" \
        '[ "$(stat A "out[\"rel.both\"][\"forwarded\"], inn[\"rel.both\"][\"received\"]")" = "(200, 200)" ] &&
         [ "$(stat B "out[\"rel.both\"][\"forwarded\"], inn[\"rel.both\"][\"received\"]")" = "(200, 200)" ] &&
         [ "$(stat C "inn[\"rel.both\"][\"received\"]")" = 400 ]'

# All of that traffic (latest, batched, both ways, JetStream acks and flow
# control on the same connection) and not one NATS reconnection: a write
# of an empty buffer is a closed connection to libnats.
check "no NATS reconnection on A, B or C through all of that" \
        '[ "$(stat A "s[\"reconnects\"]")" = 0 ] && [ "$(stat B "s[\"reconnects\"]")" = 0 ] &&
         [ "$(stat C "s[\"reconnects\"]")" = 0 ]' "$dir/A.bridge.log" "$dir/B.bridge.log" "$dir/C.bridge.log"

# ---- both ways, reliable, kill -9 of one side's bridge mid-stream ------------------

# A's restarted bridge re-reads the ring from its position: the echoes of
# B's messages in it must be known again (the echo windows are files of
# the state directory), or B and C would get B's messages twice.
NB=20000
both_ways rel.bk $NB --slots 32768
wait_until '[ "$(stat A "out[\"rel.bk\"][\"forwarded\"] >= $NB / 10")" = True ]'
a_at_kill=$(stat A 'out["rel.bk"]["forwarded"]')
kill_restart_bridge A
check "reliable both ways: A's bridge killed mid-stream, after sending $a_at_kill of $NB" '[ "$a_at_kill" -lt $NB ]'
both_ways_check rel.bk $NB "reliable both ways, A's bridge killed"
wait_until '[ "$(stat C "inn[\"rel.bk\"][\"received\"]")" = $((2 * NB)) ]'
check "... nothing more: C received $((2 * NB)), B A's $NB" \
        '[ "$(stat C "inn[\"rel.bk\"][\"received\"]")" = $((2 * NB)) ] && [ "$(stat B "inn[\"rel.bk\"][\"received\"]")" = $NB ]'

# ---- reliable, kill -9 of the sending bridge mid-stream -------------------------------

# reliable_run NAME N KILL...: topic rel.NAME, N messages from $src (A
# unless set); once B has a tenth, run KILL; then B and C must get all N
# exactly once in order.
src=A
reliable_run() {
        local t=rel.$1 count=$2
        shift 2
        start_sub "$t.B" B "$t" --slots 8192 -n "$count" -t "$T" &&
                start_sub "$t.C" C "$t" --slots 8192 -n "$count" -t "$T" &&
                cli $src sub "$t" --slots 32768 -t 0 >/dev/null 2>&1
        wait_until "routed $src $t"
        # The sender's ring holds them all: what it overwrites while a
        # killed bridge is down would be lost to the bridge (gaps).
        cli $src pub --slots 32768 --size 16 -n "$count" "$t"
        wait_until "[ \$(lines '$dir/$t.B.out') -ge $((count / 10)) ]"
        got_at_kill=$(lines "$dir/$t.B.out")
        "$@"
        end_sub "$t.B"
        rcB=$sub_rc
        end_sub "$t.C"
        rcC=$sub_rc
        expected_sized "$count" 16 >"$dir/$t.expected"
}

# Enough that the kill lands mid-stream with a pipelining sender (3000 went
# through before the first look).
NR=20000
reliable_run k $NR kill_restart_bridge A
check "reliable: kill -9 of A's bridge mid-stream (B had $got_at_kill of $NR): B gets every message once, in order" \
        '[ "$rcB" -eq 0 ] && [ "$got_at_kill" -lt $NR ] && cmp -s "$dir/rel.k.expected" "$dir/rel.k.B.out"' \
        "$dir/rel.k.B.err" "$dir/A.bridge.log"
check "... and so does C" '[ "$rcC" -eq 0 ] && cmp -s "$dir/rel.k.expected" "$dir/rel.k.C.out"' \
        "$dir/rel.k.C.err" "$dir/C.bridge.log"

reliable_run n $NR kill_restart_bridge B
check "reliable: kill -9 of B's (receiving) bridge mid-stream (B had $got_at_kill): B gets every message once, in order" \
        '[ "$rcB" -eq 0 ] && [ "$got_at_kill" -lt $NR ] && cmp -s "$dir/rel.n.expected" "$dir/rel.n.B.out"' \
        "$dir/rel.n.B.err" "$dir/B.bridge.log"
check "... and C, whose bridge ran on" '[ "$rcC" -eq 0 ] && cmp -s "$dir/rel.n.expected" "$dir/rel.n.C.out"' \
        "$dir/rel.n.C.err" "$dir/C.bridge.log"

# The node A's bridge is connected to (libnats picks one of its list).
kill_restart_nats_of_A() {
        local url port i
        url=$(stat A 's["nats_server"]')
        port=${url##*:}
        for i in 1 2 3; do
                eval "[ \"\$P$i\" = \"$port\" ]" && killed=$i
        done
        kill9 "n$killed"
        wait_until '[ "$(stat A "s[\"reconnects\"] > $reconnects_before")" = True ]'
        start_nats "$killed"
}
reconnects_before=$(stat A 's["reconnects"]')
killed=0
reliable_run m $NR kill_restart_nats_of_A
check "reliable: kill -9 of A's NATS node (n$killed) mid-stream (B had $got_at_kill): B gets every message once, in order" \
        '[ "$rcB" -eq 0 ] && [ "$got_at_kill" -lt $NR ] && cmp -s "$dir/rel.m.expected" "$dir/rel.m.B.out"' \
        "$dir/rel.m.B.err" "$dir/A.bridge.log" "$dir/B.bridge.log"
check "... and C" '[ "$rcC" -eq 0 ] && cmp -s "$dir/rel.m.expected" "$dir/rel.m.C.out"' \
        "$dir/rel.m.C.err" "$dir/C.bridge.log"
check "A's bridge counted the reconnection" \
        '[ "$(stat A "s[\"reconnects\"] > $reconnects_before")" = True ]' "$dir/A.bridge.log"

# ---- reliable, out of order in the stream: the receivers' reorder ---------------

# D's bridge withholds every 5th publish until nothing else can go, so the
# stream holds it after (some of) its successors. Without the receivers'
# reorder the retried ones would be taken for duplicates (their sequence
# below the last seen) and lost. D's bridge is killed mid-stream (some
# withheld ones are then sent again by the restarted bridge), then, on
# rel.v, B's.
src=D
reliable_run w $NR kill_restart_bridge D
check "reorder: D withholds every 5th publish, its bridge killed mid-stream (B had $got_at_kill): B gets every message once, in order" \
        '[ "$rcB" -eq 0 ] && [ "$got_at_kill" -lt $NR ] && cmp -s "$dir/rel.w.expected" "$dir/rel.w.B.out"' \
        "$dir/rel.w.B.err" "$dir/D.bridge.log" "$dir/B.bridge.log"
check "... and C" '[ "$rcC" -eq 0 ] && cmp -s "$dir/rel.w.expected" "$dir/rel.w.C.out"' \
        "$dir/rel.w.C.err" "$dir/C.bridge.log"
check "... B and C held messages back (the stream had them out of order), and gave up on none" \
        '[ "$(stat B "inn[\"rel.w\"][\"held\"] > 0 and inn[\"rel.w\"][\"reorder_gaps\"] == 0 and inn[\"rel.w\"][\"late\"] == 0")" = True ] &&
         [ "$(stat C "inn[\"rel.w\"][\"held\"] > 0 and inn[\"rel.w\"][\"reorder_gaps\"] == 0")" = True ]' \
        "$dir/B.bridge.log" "$dir/C.bridge.log"
reliable_run v $NR kill_restart_bridge B
check "reorder: B's bridge killed mid-stream while it may hold some (B had $got_at_kill): B gets every message once, in order" \
        '[ "$rcB" -eq 0 ] && [ "$got_at_kill" -lt $NR ] && cmp -s "$dir/rel.v.expected" "$dir/rel.v.B.out"' \
        "$dir/rel.v.B.err" "$dir/B.bridge.log"
check "... and C, whose bridge ran on, held some back" '[ "$rcC" -eq 0 ] && cmp -s "$dir/rel.v.expected" "$dir/rel.v.C.out" &&
         [ "$(stat C "inn[\"rel.v\"][\"held\"] > 0 and inn[\"rel.v\"][\"reorder_gaps\"] == 0")" = True ]' \
        "$dir/rel.v.C.err" "$dir/C.bridge.log"
src=A

# ---- forged origins: bounded holding, gaps, late ones ---------------------------------

# forge ORIGIN PAYLOAD: store a message in forge.x's stream (D receives it)
# with that Zcbus-Origin value ("" for none).
forge() {
        "$ZCBUS_BRIDGE_FORGE" "nats://127.0.0.1:$P1" zcbus.forge.x "$1" "$2" ||
                not_ok "the forger stores '$2'"
}
fb=f0f0f0f0-0000-4000-8000-000000000001
ft=f0f0f0f0-0000-4000-8000-000000000002
ft2=f0f0f0f0-0000-4000-8000-000000000003
fs=f0f0f0f0-0000-4000-8000-000000000004
fin() { stat D "inn[\"forge.x\"][\"$1\"]"; }
start_sub forge D forge.x --slots 1024 -n 24 -t "$T" || not_ok "sub forge.x on D"
forge "$fb $ft 10 $fs 5" f10    # 5 never comes: held, then given up on
forge "$fb $ft 11 $fs 10" f11   # next after 10: held behind it
forge "" plain1                 # no origin: delivered at once
wait_until '[ "$(fin reorder_gaps)" = 1 ] && [ "$(fin held_now)" = 0 ]'
forge "$fb $ft 7 $fs 6" f7      # inside the gap given up on: late
forge "$fb $ft 12 $fs 99" f12   # PREV not below SEQ: no origin of ours, delivered as it is
forge "$fb $ft 11 $fs 10" f11   # again: a duplicate
for i in $(seq 0 19); do        # 20 of another origin, each missing its predecessor
        forge "$fb $ft2 $((100 + 2 * i)) $fs $((99 + 2 * i))" "g$i"
done
end_sub forge
check "forged: the route was not stalled, and delivered f10 then f11 once their wait was over" \
        '[ "$sub_rc" -eq 0 ] && grep -qx plain1 "$dir/forge.out" && [ "$(grep "^f1[01]$" "$dir/forge.out" | tr "\n" " ")" = "f10 f11 " ]' \
        "$dir/forge.out" "$dir/forge.err" "$dir/D.bridge.log"
check "forged: one arriving inside the gap given up on is late (dropped), a PREV not below SEQ is no origin, a repeat a duplicate" \
        '! grep -qx f7 "$dir/forge.out" && [ "$(fin late)" = 1 ] && grep -qx f12 "$dir/forge.out" &&
         [ "$(grep -cx f11 "$dir/forge.out")" = 1 ]' "$dir/forge.out" "$dir/D.bridge.log"
check "forged: 20 held ones of another origin through a buffer of 8: all delivered, in order, each gap counted, nothing left held" \
        '[ "$(grep "^g" "$dir/forge.out" | tr "\n" " ")" = "$(seq -f "g%g" 0 19 | tr "\n" " ")" ] &&
         [ "$(fin reorder_gaps)" = 21 ] && [ "$(fin held_now)" = 0 ]' "$dir/forge.out" "$dir/D.bridge.log"

# The predecessor a chain waits for, arriving while the buffer is full of
# another origin's: taken at once with what it frees, not given up on for
# room (it would have been late). One forger run: all within milliseconds,
# far inside reorder_ms.
ft3=f0f0f0f0-0000-4000-8000-000000000005
ft4=f0f0f0f0-0000-4000-8000-000000000006
late0=$(fin late)
start_sub forge2 D forge.x --slots 1024 -n 10 -t "$T" || not_ok "sub forge.x on D again"
forged=("$fb $ft3 1 $fs -" k1 "$fb $ft3 3 $fs 2" k3)
for i in $(seq 0 6); do
        forged+=("$fb $ft4 $((201 + 2 * i)) $fs $((200 + 2 * i))" "m$i")
done
forged+=("$fb $ft3 2 $fs 1" k2)
"$ZCBUS_BRIDGE_FORGE" "nats://127.0.0.1:$P1" zcbus.forge.x "${forged[@]}" || not_ok "the forger stores k1..k3"
end_sub forge2
check "forged: a predecessor that comes while the buffer is full of others is delivered, with what waited for it, in order" \
        '[ "$sub_rc" -eq 0 ] && [ "$(grep "^k" "$dir/forge2.out" | tr "\n" " ")" = "k1 k2 k3 " ] && [ "$(fin late)" = "$late0" ]' \
        "$dir/forge2.out" "$dir/forge2.err" "$dir/D.bridge.log"

# A sender restarted after its ring lapped it names as PREV the end of its
# acknowledged prefix, older than what JetStream stored after it (3..5,
# whose predecessor 2 was in flight): those come first, in order, not
# dropped as repeats.
ft5=f0f0f0f0-0000-4000-8000-000000000007
dup0=$(stat D "s[\"duplicates\"]")
start_sub forge3 D forge.x --slots 1024 -n 5 -t "$T" || not_ok "sub forge.x on D a third time"
"$ZCBUS_BRIDGE_FORGE" "nats://127.0.0.1:$P1" zcbus.forge.x "$fb $ft5 1 $fs -" p1 "$fb $ft5 3 $fs 2" p3 \
        "$fb $ft5 4 $fs 3" p4 "$fb $ft5 5 $fs 4" p5 "$fb $ft5 12 $fs 1" p12 || not_ok "the forger stores p1..p12"
end_sub forge3
check "forged: held ones before a message naming an older predecessor are delivered first, in order, none dropped" \
        '[ "$sub_rc" -eq 0 ] && [ "$(tr "\n" " " <"$dir/forge3.out")" = "p1 p3 p4 p5 p12 " ] &&
         [ "$(stat D "s[\"duplicates\"]")" = "$dup0" ]' "$dir/forge3.out" "$dir/forge3.err" "$dir/D.bridge.log"

# ---- latest under overload: the producer never waits --------------------------------

NF=200000
reconnects_before=$(stat A 's["reconnects"]')
cli A sub flood --policy latest --slots 16 -t 0 >/dev/null 2>&1
wait_until 'routed A flood'
cli A pub --policy latest --slots 16 --size 64 -n $NF -t 0 flood 2>"$dir/flood.err"
rc=$?
check "latest flood: $NF messages on a 16-slot topic, pub -t 0 never has to wait" '[ "$rc" -eq 0 ]' "$dir/flood.err"
wait_until '[ "$(stat A "out[\"flood\"][\"forwarded\"] + out[\"flood\"][\"dropped\"] >= $NF - 16")" = True ]'
check "latest flood: A's bridge drops and counts (dropped > 0, forwarded + dropped covers all $NF)" \
        '[ "$(stat A "out[\"flood\"][\"dropped\"] > 0 and out[\"flood\"][\"forwarded\"] + out[\"flood\"][\"dropped\"] >= $NF - 16")" = True ]' \
        "$dir/A.bridge.log"
# Three latest topics' readers writing the one connection at once, in
# bursts for a few seconds: one's flush must never leave another an empty
# buffer to write.
ppids=()
for t in fan.p1 fan.p2 fan.p3; do
        cli A sub $t --policy latest --slots 256 --slot-size 4K -t 0 >/dev/null 2>&1
        wait_until "routed A $t"
done
for t in fan.p1 fan.p2 fan.p3; do
        for i in $(seq 50); do
                cli A pub --size 2000 -n 300 -t 0 $t 2>>"$dir/flood.err"
                sleep 0.02
        done &
        ppids+=($!)
done
wait "${ppids[@]}"
check "latest flood: ... and A's NATS connection was not lost meanwhile, nor with three topics' readers writing it at once" \
        '[ "$(stat A "s[\"reconnects\"]")" = "$reconnects_before" ]' "$dir/A.bridge.log"

# ---- latest, NATS not reading: what the bridge buffers is bounded --------------------

# The node A's bridge writes to is stopped (SIGSTOP): its socket fills, and
# the bridge, whose writes never block a latest topic's reader, buffers at
# most 256 KiB more and then drops what it reads, counted. 240 MB go out
# meanwhile; the bridge's private memory (RssAnon: not the ring it maps)
# grows by far less.
url=$(stat A 's["nats_server"]')
for i in 1 2 3; do
        eval "[ \"\$P$i\" = \"${url##*:}\" ]" && stopped=$i
done
cli A sub big.stuck --policy latest --slots 1024 --slot-size 64K -t 0 >/dev/null 2>&1
wait_until 'routed A big.stuck'
anon0=$(awk '/^RssAnon/ { print $2 }' "/proc/${pid[bridgeA]}/status")
kill -STOP "${pid[n$stopped]}"
# In bursts the bridge keeps up with (a ring of 1024), so that what it
# drops is what it could not write, not what the ring lapped.
rc=0
for i in 1 2 3 4; do
        cli A pub --size 60000 -n 1000 -t 0 big.stuck 2>>"$dir/stuck.err" || rc=1
        sleep 0.3
done
wait_until '[ "$(stat A "out[\"big.stuck\"][\"forwarded\"] + out[\"big.stuck\"][\"dropped\"] >= 4000")" = True ]'
anon=$(awk '/^RssAnon/ { print $2 }' "/proc/${pid[bridgeA]}/status")
kill -CONT "${pid[n$stopped]}"
check "latest, A's NATS node stopped: 4000 x 60000 B published without waiting; the bridge drops and counts, its private memory grew by $(((anon - anon0) / 1024)) MiB (< 48)" \
        '[ "$rc" -eq 0 ] && [ "$(stat A "out[\"big.stuck\"][\"dropped\"] > 0")" = True ] && [ $((anon - anon0)) -lt 49152 ]' \
        "$dir/stuck.err" "$dir/A.bridge.log"

# ---- oversize: above max_payload is refused and counted -----------------------------

start_sub big B big.x --policy latest --slot-size 256K -n 2 -t "$T"
cli A sub big.x --policy latest --slot-size 256K -t 0 >/dev/null 2>&1
wait_until 'routed A big.x'
cli A pub --policy latest --slot-size 256K --size 100000 big.x
cli A pub --policy latest --slot-size 256K big.x after1 after2
end_sub big
check "oversize: a 100000-byte message (max_payload 64 KiB) is not sent; the next ones are" \
        '[ "$sub_rc" -eq 0 ] && [ "$(cat "$dir/big.out")" = "$(printf "after1\nafter2")" ]' "$dir/big.err"
check "oversize: counted, and logged once naming the topic and the limit" \
        '[ "$(stat A "out[\"big.x\"][\"oversize\"]")" = 1 ] &&
         grep -q "topic .big.x.: a 100000-byte message is larger than the NATS server.s max_payload (65536" "$dir/A.bridge.log"' \
        "$dir/A.bridge.log"

# ---- the counters' views ---------------------------------------------------------------

"$ZCBUS_BRIDGE" -c "$dir/A.conf" --stats --json >"$dir/stats.json" 2>"$dir/stats.err"
check "--stats --json is valid JSON with every counter" \
        'python3 -c "import json, sys
s = json.load(open(sys.argv[1]))
for k in (\"forwarded\", \"received\", \"dropped\", \"duplicates\", \"loops\", \"oversize\", \"reconnects\"):
    assert isinstance(s[k], int), k" "$dir/stats.json"' "$dir/stats.json" "$dir/stats.err"
"$ZCBUS_BRIDGE" -c "$dir/B.conf" --stats >"$dir/stats.txt" 2>"$dir/stats.err"
check "--stats prints the counters as text" 'grep -Eq "^received +[1-9][0-9]*$" "$dir/stats.txt"' "$dir/stats.txt"
cli B list >"$dir/list.out"
check "zcbus list on B shows the bridge as the producer of what came in" \
        'grep -Eq "^rel\.v +reliable +[0-9]+ +[0-9]+ +1 " "$dir/list.out"' "$dir/list.out"

# ---- zcbusd restarts under a bridge: it hands its handles back -----------------------

# B's zcbusd dies and comes back: the bridge's rings keep flowing, and once
# the new broker listens the bridge hands it every handle (zcbus_reconnect),
# so that a subscriber that opens fan.t on B afterwards meets the ring the
# bridge publishes into, not a new one.
kill9 brokerB
if start_broker B; then
        wait_until '[ "$(stat B "s[\"bus_reconnects\"] >= 1")" = True ]'
        check "a restarted zcbusd gets the bridge's handles back" \
                '[ "$(stat B "s[\"bus_reconnects\"] >= 1")" = True ] && grep -q "zcbusd is back" "$dir/B.bridge.log"' \
                "$dir/B.bridge.log" "$dir/B.broker.log"
        start_sub fanB2 B fan.t --policy latest --slots 1024 -n $N -t "$T"
        cli A pub --policy latest --slots 1024 --size 32 -n $N fan.t
        end_sub fanB2
        check "... and a subscriber on B that comes after gets what A publishes" \
                '[ "$sub_rc" -eq 0 ] && cmp -s "$dir/fan.expected" "$dir/fanB2.out"' "$dir/fanB2.err" "$dir/B.bridge.log"
else
        not_ok "zcbusd B restarts" "$dir/B.broker.log"
fi

kill -TERM "${pid[bridgeC]}"
wait "${pid[bridgeC]}"
rc=$?
unset "pid[bridgeC]"
check "SIGTERM stops a bridge with status 0" '[ "$rc" -eq 0 ]' "$dir/C.bridge.log"

# ---- NATS gone: the bounded buffer, then eviction like any stalled subscriber ------

# Last, since it stops the cluster. A reliable 16-slot topic whose broker
# gives up on a stalled subscriber after 1 s (stall.*): the bridge's queue
# (buffer = 1024) fills, the ring fills, the producer waits, and the broker
# evicts the bridge, which says so; the producer then goes on.
cli A sub stall.x --slots 16 -t 0 >/dev/null 2>&1
wait_until 'routed A stall.x'
for i in 1 2 3; do
        [ -n "${pid[n$i]:-}" ] && kill9 "n$i"
done
cli A pub --slots 16 --size 16 -n 3000 -t "$T" stall.x 2>"$dir/stall.err"
rc=$?
check "NATS down: a producer of a reliable topic is held back only until the broker evicts the bridge" \
        '[ "$rc" -eq 0 ]' "$dir/stall.err" "$dir/A.broker.log"
wait_until '[ "$(stat A "s[\"evicted\"] >= 1")" = True ]'
check "... and the bridge counts the eviction and says why" \
        '[ "$(stat A "s[\"evicted\"] >= 1")" = True ] &&
         grep -q "evicted the bridge.s subscription to .stall.x." "$dir/A.bridge.log"' "$dir/A.bridge.log"

finish
