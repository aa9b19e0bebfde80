#!/bin/sh
# SPDX-License-Identifier: MIT
# test_cli.sh: end-to-end tests of the zcbus CLI against a real zcbusd on a
# private socket. Run by `make check` with ZCBUSD and ZCBUS_CLI set to the
# built binaries; exits 77 (skip) without them.
#
# Nothing here sleeps to wait for anything: the broker and every background
# subscriber report readiness through a fifo (--ready-fd), and background
# subscribers carry a generous -t so a bug fails a check instead of hanging
# the suite. The broker and any stray subscriber are killed on every exit
# path (trap EXIT), and the temp dir with the socket goes with them.

# The checks are strings eval'd by check(), hence SC2016/SC2034/SC2317.
# shellcheck disable=SC2016,SC2034,SC2317

set -u
# ok, not_ok, finish and the signal traps
. "$(dirname "$0")/tap.sh"

if [ -z "${ZCBUSD:-}" ] || [ -z "${ZCBUS_CLI:-}" ]; then
        echo "SKIP: ZCBUSD and ZCBUS_CLI must name the built zcbusd and zcbus"
        exit 77
fi

# Safety net for background subscribers only; no check depends on timing.
T=$((10000 * ${ZCBUS_TEST_SCALE:-1}))

tap_workdir cli

# check DESCRIPTION CONDITION...: ok if the condition command succeeds;
# on failure the files of the last `run` are shown.
check() {
        desc=$1
        shift
        if "$@"; then
                ok "$desc"
        else
                not_ok "$desc" "$dir/last.out" "$dir/last.err"
        fi
}

# ---- helpers ---------------------------------------------------------------

# run CMD...: run with stdin from /dev/null; stdout, stderr and status go
# to $dir/last.out, $dir/last.err and $rc.
run() {
        "$@" </dev/null >"$dir/last.out" 2>"$dir/last.err"
        rc=$?
}

cli() {
        "$ZCBUS_CLI" -s "$sock" "$@"
}

lines() {
        echo $(($(wc -l <"$1")))
}

# expect FILE FORMAT [ARGS...]: FILE holds exactly printf FORMAT ARGS.
expect() {
        f=$1
        shift
        # shellcheck disable=SC2059
        printf "$@" >"$dir/expected"
        cmp -s "$dir/expected" "$f"
}

# Usage error: exit 2, nothing on stdout, exactly one line on stderr.
usage_error() {
        [ "$rc" -eq 2 ] && [ ! -s "$dir/last.out" ] && [ "$(lines "$dir/last.err")" -eq 1 ]
}

# Runtime error: exit 1, exactly one line on stderr mentioning $1.
runtime_error() {
        [ "$rc" -eq 1 ] && [ "$(lines "$dir/last.err")" -eq 1 ] && grep -q -- "$1" "$dir/last.err"
}

# start_sub NAME SUB-ARGS...: a background `zcbus sub` with output in
# $dir/NAME.out and NAME.err; returns once it has subscribed (READY) or
# failed. Its pid is $sub_pid.
start_sub() {
        name=$1
        shift
        mkfifo "$dir/$name.ready" || return 1
        # A simple command, not a function: $! is zcbus itself, not a subshell.
        "$ZCBUS_CLI" -s "$sock" sub "$@" --ready-fd 3 3>"$dir/$name.ready" \
                >"$dir/$name.out" 2>"$dir/$name.err" </dev/null &
        sub_pid=$!
        bg_pids="$bg_pids $sub_pid"
        ready=
        read -r ready <"$dir/$name.ready"
        [ "$ready" = READY ]
}

# finish_sub: wait for the last background subscriber; status in $sub_rc.
finish_sub() {
        wait "$sub_pid" 2>/dev/null # dash reports "Terminated" otherwise
        sub_rc=$?
        # Reaped: make sure cleanup does not signal a recycled pid.
        bg_pids=$(echo "$bg_pids" | sed "s/ $sub_pid\$//; s/ $sub_pid / /")
}

# ---- checks that need no broker ---------------------------------------------

# ---- man pages -----------------------------------------------------------------

if command -v mandoc >/dev/null 2>&1 && [ -n "${ZCBUS_SRCDIR:-}" ]; then
        run sh -c 'for f in "$1"/docs/man/*.[138]; do mandoc -T lint "$f" || exit 1; done' sh "$ZCBUS_SRCDIR"
        check "mandoc -T lint finds nothing in the man pages" eval '[ "$rc" -eq 0 ] && [ ! -s "$dir/last.out" ] && [ ! -s "$dir/last.err" ]'
else
        echo "# skip: mandoc -T lint (no mandoc; scripts/deps.sh installs it)"
fi


run "$ZCBUS_CLI" --help
check "zcbus --help exits 0 and lists the commands" \
        eval '[ "$rc" -eq 0 ] && grep -q "^Usage: zcbus" "$dir/last.out" && grep -q "pub" "$dir/last.out" && [ ! -s "$dir/last.err" ]'

run "$ZCBUS_CLI" --version
check "zcbus --version exits 0 and names the API, not a protocol" \
        eval '[ "$rc" -eq 0 ] && grep -q "^zcbus .*(API [0-9]*\.[0-9]*)" "$dir/last.out"'

for c in pub sub list record replay lat perf; do
        run "$ZCBUS_CLI" "$c" --help
        cp "$dir/last.out" "$dir/help1"
        check "zcbus $c --help prints usage to stdout, exit 0" \
                eval '[ "$rc" -eq 0 ] && [ -s "$dir/last.out" ] && [ ! -s "$dir/last.err" ]'
        run "$ZCBUS_CLI" help "$c"
        check "zcbus help $c prints the same usage" eval '[ "$rc" -eq 0 ] && cmp -s "$dir/help1" "$dir/last.out"'
done

run "$ZCBUS_CLI"
check "missing command: usage error with a hint" eval 'usage_error && grep -q "zcbus --help" "$dir/last.err"'
run "$ZCBUS_CLI" frobnicate
check "unknown command: usage error with a hint" eval 'usage_error && grep -q "zcbus --help" "$dir/last.err"'
run "$ZCBUS_CLI" --bogus list
check "unknown global option: usage error" usage_error
run cli pub --bogus t1 a
check "pub: unknown option is a usage error" usage_error
run cli pub -n -1 t1 a
check "pub: negative count is a usage error" usage_error
run cli pub -n abc t1 a
check "pub: count 'abc' is a usage error" usage_error
run cli pub -n 3x t1 a
check "pub: count with trailing junk is a usage error" usage_error
run cli pub --slots 3 t1 a
check "pub: --slots not a power of two is a usage error" usage_error
run cli pub --policy sometimes t1 a
check "pub: unknown policy is a usage error" usage_error
run cli pub
check "pub: missing topic is a usage error" usage_error
run cli sub
check "sub: missing topic is a usage error" usage_error
run cli sub -t 1.5 t1
check "sub: timeout '1.5' is a usage error" usage_error
run cli sub --wait sometimes t1
check "sub: unknown wait mode is a usage error" usage_error
run cli sub t1 t2
check "sub: a second topic is a usage error" usage_error
run cli list --extra
check "list: an unknown option is a usage error" usage_error

run "$ZCBUS_CLI" -s "$dir/nobroker.sock" pub t1 a
check "no broker: pub fails with a clear error in the library's words (zcbus_strerror)" \
        eval 'runtime_error "cannot connect to broker at .$dir/nobroker.sock.: no such file, socket, topic or entry (is zcbusd running?)\$"'
run env ZCBUS_SOCKET="$dir/nobroker-env.sock" "$ZCBUS_CLI" list
check "no broker: the error names \$ZCBUS_SOCKET's path" runtime_error "nobroker-env.sock"

# ---- start the broker --------------------------------------------------------

mkfifo "$dir/broker.ready" || exit 99
# Topics gate.* stall for a minute, so a stopped subscriber is seen gating,
# not evicted.
echo "stall = gate.* 60000" >"$dir/zcbusd.conf"
"$ZCBUSD" -f -s "$sock" -c "$dir/zcbusd.conf" --ready-fd 3 3>"$dir/broker.ready" >"$dir/broker.log" 2>&1 </dev/null &
broker_pid=$!
ready=
read -r ready <"$dir/broker.ready"
if [ "$ready" = READY ]; then
        ok "broker starts and reports READY"
else
        not_ok "broker starts and reports READY" "$dir/broker.log"
        finish
fi

# ---- data ----------------------------------------------------------------------

if start_sub rt rt -n 3 -t "$T"; then
        run cli pub rt a b c
        pub_rc=$rc
        finish_sub
        check "round trip: sub gets a, b, c in order" \
                eval '[ "$pub_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ] && expect "$dir/rt.out" "a\nb\nc\n"'
else
        not_ok "round trip: sub subscribes" "$dir/rt.err"
fi

if start_sub stdin stdin -n 3 -t "$T"; then
        printf 'x\ny\nlast line, no newline' | cli pub stdin >"$dir/last.out" 2>"$dir/last.err"
        pub_rc=$?
        finish_sub
        check "stdin: each line is one message, newline stripped" \
                eval '[ "$pub_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ] && expect "$dir/stdin.out" "x\ny\nlast line, no newline\n"'
else
        not_ok "stdin: sub subscribes" "$dir/stdin.err"
fi

if start_sub rep rep -n 6 -t "$T"; then
        run cli pub -n 3 rep a b
        pub_rc=$rc
        finish_sub
        check "pub -n 3 repeats the set of messages" \
                eval '[ "$pub_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ] && expect "$dir/rep.out" "a\nb\na\nb\na\nb\n"'
else
        not_ok "pub -n: sub subscribes" "$dir/rep.err"
fi

if start_sub dash dash -n 1 -t "$T"; then
        run cli pub dash -- -x
        pub_rc=$rc
        finish_sub
        check "pub -- sends a message starting with '-'" \
                eval '[ "$pub_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ] && expect "$dir/dash.out" "%s\n" -x'
else
        not_ok "pub --: sub subscribes" "$dir/dash.err"
fi

if start_sub syn syn -n 3 -t "$T"; then
        run cli pub --size 12 -n 3 syn
        pub_rc=$rc
        finish_sub
        check "pub --size: deterministic payloads of exactly that size" \
                eval '[ "$pub_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ] && expect "$dir/syn.out" "0xxxxxxxxxxx\n1xxxxxxxxxxx\n2xxxxxxxxxxx\n"'
else
        not_ok "pub --size: sub subscribes" "$dir/syn.err"
fi

if start_sub verbose verbose -v -n 2 -t "$T"; then
        run cli pub verbose hello ab
        pub_rc=$rc
        finish_sub
        check "sub -v prefixes seq, len and lost" \
                eval '[ "$pub_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ] && [ "$(lines "$dir/verbose.out")" -eq 2 ] &&
                      grep -q "^seq=[0-9][0-9]* len=5 lost=0 hello\$" "$dir/verbose.out" &&
                      grep -q "^seq=[0-9][0-9]* len=2 lost=0 ab\$" "$dir/verbose.out"'
else
        not_ok "sub -v: sub subscribes" "$dir/verbose.err"
fi

if start_sub hex hex --hex -n 1 -t "$T"; then
        run cli pub hex 'AB z'
        pub_rc=$rc
        finish_sub
        check "sub --hex prints payloads as hex" \
                eval '[ "$pub_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ] && expect "$dir/hex.out" "4142207a\n"'
else
        not_ok "sub --hex: sub subscribes" "$dir/hex.err"
fi

run cli pub --slots 16 hist 1 2 3 4 5
pub_rc=$rc
run cli sub hist --history 3 -n 3 -t "$T"
check "sub --history 3 starts with the last 3 messages" \
        eval '[ "$pub_rc" -eq 0 ] && [ "$rc" -eq 0 ] && expect "$dir/last.out" "3\n4\n5\n"'

big=$(printf '%0100d' 0)
run cli pub --slot-size 64 small "$big"
check "pub: a 100-byte message on a 64-byte topic fails naming size and limit" \
        eval 'runtime_error 100 && grep -q 64 "$dir/last.err"'
run cli pub --size 100 small
check "pub --size: too large fails naming the size" runtime_error 100
printf 'short\n%s\n' "$big" | cli pub small >"$dir/last.out" 2>"$dir/last.err"
rc=$?
check "pub: a too-large stdin line fails naming the size" runtime_error 100

run cli sub silent -t 100
check "sub -t 100 on a silent topic times out with exit 1" runtime_error "timed out after 100 ms"

run cli sub hist --history 3 -t 0
check "sub -t 0 --history 3 prints what is there and exits 0" \
        eval '[ "$rc" -eq 0 ] && expect "$dir/last.out" "3\n4\n5\n" && [ ! -s "$dir/last.err" ]'

run cli pub 'bad topic' x
check "pub: a topic name with a space is a usage error that says why" \
        eval 'usage_error && grep -q "space or a control character" "$dir/last.err"'
run cli sub "$(printf 'tab\tbed')" -n 1
check "sub: a topic name with a tab is a usage error that says why" \
        eval 'usage_error && grep -q "space or a control character" "$dir/last.err"'

run cli pub --slots 32M t1 a
check "pub: --slots above 16M is a usage error naming the range" eval 'usage_error && grep -q "16M" "$dir/last.err"'

# A stopped subscriber gates a 2-slot topic: pub -t 100 times out, and says
# so once.
if start_sub gate slowroom -t "$T" --slots 2; then
        kill -STOP "$sub_pid"
        run cli pub --slots 2 -t 100 slowroom a b c d
        check "pub -t 100 behind a stopped subscriber says 'timed out' once" \
                eval 'runtime_error "timed out after 100 ms waiting for room in topic" &&
                      [ "$(grep -o "timed out" "$dir/last.err" | wc -l)" -eq 1 ]'
        kill -CONT "$sub_pid"
        kill -TERM "$sub_pid"
        finish_sub
else
        not_ok "pub -t behind a stopped subscriber: sub subscribes" "$dir/gate.err"
fi

# ---- sub --json, --ts, --raw, -0; pub --file, --raw, -0; patterns -----------

if start_sub json jsn --json -n 3 -t "$T"; then
        run cli pub jsn hello "$(printf 'caf\303\251')"
        pub1_rc=$rc
        printf 'a\000b\377' | cli pub jsn >"$dir/last.out" 2>"$dir/last.err"
        pub2_rc=$?
        finish_sub
        cat >"$dir/json_check.py" <<'PY'
import base64, json, sys
v = [json.loads(l) for l in open(sys.argv[1], "rb")]
assert len(v) == 3, v
assert [m["topic"] for m in v] == ["jsn"] * 3, v
assert [m["seq"] for m in v] == [v[0]["seq"] + i for i in range(3)], v
assert all(m["lost"] == 0 and isinstance(m["ts_ns"], int) and m["ts_ns"] > 0 for m in v), v
assert (v[0]["encoding"], v[0]["payload"], v[0]["len"]) == ("utf-8", "hello", 5), v[0]
assert (v[1]["encoding"], v[1]["payload"], v[1]["len"]) == ("utf-8", "caf\u00e9", 5), v[1]
assert v[2]["encoding"] == "base64" and base64.b64decode(v[2]["payload"]) == b"a\0b\xff", v[2]
assert v[2]["len"] == 4, v[2]
PY
        check "sub --json: one object per line with topic, seq, len, lost, ts_ns and the payload" \
                eval '[ "$pub1_rc" -eq 0 ] && [ "$pub2_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ] &&
                      python3 "$dir/json_check.py" "$dir/json.out"'
else
        not_ok "sub --json: sub subscribes" "$dir/json.err"
fi

if start_sub ts tsq --ts -v -n 1 -t "$T"; then
        run cli pub tsq x
        pub_rc=$rc
        finish_sub
        check "sub --ts prefixes the producer's commit time in seconds" \
                eval '[ "$pub_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ] &&
                      grep -Eq "^ts=[0-9]+\.[0-9]{9} seq=[0-9]+ len=1 lost=0 x\$" "$dir/ts.out"'
else
        not_ok "sub --ts: sub subscribes" "$dir/ts.err"
fi

# Binary frames (NULs, an empty one, every byte value) through
# pub --raw -> rawA -> sub --raw | pub --raw -> rawB -> sub --raw.
python3 -c 'import struct, sys
msgs = [b"\0\1\2", b"", b"hello\0world\n", bytes(range(256)), b"\0" * 100]
sys.stdout.buffer.write(b"".join(struct.pack("<I", len(m)) + m for m in msgs))' >"$dir/frames.bin"
if start_sub rawB rawB --raw -n 5 -t "$T"; then
        mkfifo "$dir/fwd.ready" || exit 99
        ("$ZCBUS_CLI" -s "$sock" sub rawA --raw -n 5 -t "$T" --ready-fd 3 3>"$dir/fwd.ready" 2>"$dir/fwd.err" </dev/null |
                "$ZCBUS_CLI" -s "$sock" pub --raw rawB 2>>"$dir/fwd.err"; echo $? >"$dir/fwd.status") &
        fwd_pid=$!
        bg_pids="$bg_pids $fwd_pid"
        read -r ready <"$dir/fwd.ready"
        cli pub --raw rawA <"$dir/frames.bin" >"$dir/last.out" 2>"$dir/last.err"
        pub_rc=$?
        wait "$fwd_pid"
        finish_sub
        check "sub --raw | pub --raw forwards binary messages byte-exact" \
                eval '[ "$pub_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ] && [ "$(cat "$dir/fwd.status")" = 0 ] &&
                      cmp -s "$dir/frames.bin" "$dir/rawB.out"'
else
        not_ok "sub --raw: sub subscribes" "$dir/rawB.err"
fi
head -c 10 "$dir/frames.bin" >"$dir/cut.bin"
cli pub --raw rawA <"$dir/cut.bin" >"$dir/last.out" 2>"$dir/last.err"
rc=$?
check "pub --raw: input cut inside a frame is an error naming the frame" runtime_error "inside the length of frame 2"
python3 -c 'import struct, sys; sys.stdout.buffer.write(struct.pack("<I", 100) + b"x" * 100)' >"$dir/bigframe.bin"
cli pub --raw --slot-size 64 rawsmall <"$dir/bigframe.bin" >"$dir/last.out" 2>"$dir/last.err"
rc=$?
check "pub --raw: a frame above the slot size fails naming size and limit" \
        eval 'runtime_error "frame 1 is 100 bytes" && grep -q 64 "$dir/last.err"'

printf 'abc\000de\000f' | cli pub -0 nul0 >"$dir/last.out" 2>"$dir/last.err"
pub_rc=$?
run cli sub nul0 --history 3 -t 0 -0
check "pub -0 and sub -0: NUL-terminated records" eval '[ "$pub_rc" -eq 0 ] && [ "$rc" -eq 0 ] && expect "$dir/last.out" "abc\000de\000f\000"'

python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 4 + b"\0end")' >"$dir/blob"
run cli pub --file "$dir/blob" blob
pub_rc=$rc
run cli sub blob --history 1 -t 0 --raw
check "pub --file publishes the whole file as one message" \
        eval '[ "$pub_rc" -eq 0 ] && [ "$rc" -eq 0 ] && tail -c +5 "$dir/last.out" | cmp -s - "$dir/blob" &&
              [ "$(head -c 4 "$dir/last.out" | od -An -tu4 | tr -d " ")" = 1028 ]'
run cli pub --slot-size 64 --file "$dir/blob" blobsmall
check "pub --file: a file above the slot size fails naming size and limit" \
        eval 'runtime_error "is 1028 bytes, more than the slot size 64"'
run cli pub --file "$dir/nonexistent" blob
check "pub --file: a missing file is a runtime error naming it" runtime_error "nonexistent"
run cli pub --file "$dir/blob" blob extra
check "pub --file and MESSAGE arguments: usage error" usage_error
run cli pub --raw -0 blob
check "pub --raw and -0: usage error" usage_error
run cli sub --json --raw blob
check "sub --json and --raw: usage error" usage_error
run cli sub -v --raw blob
check "sub -v and --raw: usage error" usage_error
run cli sub --slots 16 'blob.*'
check "sub: a pattern with topic options is a usage error" usage_error

# A pattern: an existing topic, one created after the subscription, and one
# that does not match.
run cli pub wc.one 1
if start_sub wc 'wc.*' -n 2 -t "$T"; then
        run cli pub wc.one 2
        run cli pub wcx.no 0
        run cli pub wc.two 3
        finish_sub
        sort "$dir/wc.out" >"$dir/wc.sorted"
        check "sub PATTERN reads the matching topics, one created after it started too, named per line" \
                eval '[ "$sub_rc" -eq 0 ] && expect "$dir/wc.sorted" "topic=wc.one 2\ntopic=wc.two 3\n"'
else
        not_ok "sub PATTERN: sub subscribes" "$dir/wc.err"
fi

# ---- record and replay -----------------------------------------------------

mkfifo "$dir/rec.ready" || exit 99
"$ZCBUS_CLI" -s "$sock" record "$dir/one.rec" rec.one 'rec.p.*' -n 4 -t "$T" --ready-fd 3 3>"$dir/rec.ready" \
        >"$dir/rec.out" 2>"$dir/rec.err" </dev/null &
rec_pid=$!
bg_pids="$bg_pids $rec_pid"
read -r ready <"$dir/rec.ready"
run cli pub rec.one 1 2
run cli pub rec.p.x 3
printf 'a\000b' | cli pub rec.one >"$dir/last.out" 2>"$dir/last.err"
wait "$rec_pid"
rec_rc=$?
check "record of a topic and a pattern (a topic created after it started) exits 0" \
        eval '[ "$rec_rc" -eq 0 ] && [ ! -s "$dir/rec.err" ] && [ "$(head -c 8 "$dir/one.rec")" = ZCBUSREC ]'
run cli replay --print "$dir/one.rec"
cat >"$dir/rec_check.py" <<'PY'
import json, sys
v = [json.loads(l) for l in open(sys.argv[1], "rb")]
assert len(v) == 4, v
by = {}
for m in v:
    by.setdefault(m["topic"], []).append(m)
    assert m["ts_source"] == "producer" and m["ts_ns"] > 0 and m["lost"] == 0, m
assert [m["payload"] for m in by["rec.one"]] == ["1", "2", "a\0b"], by
assert [m["seq"] for m in by["rec.one"]] == [0, 1, 2], by
assert [m["payload"] for m in by["rec.p.x"]] == ["3"], by
ts = [m["ts_ns"] for m in by["rec.one"]]
assert ts == sorted(ts), ts
PY
check "replay --print shows every record with topic, sequence, producer timestamp and payload" \
        eval '[ "$rc" -eq 0 ] && python3 "$dir/rec_check.py" "$dir/last.out"'

if start_sub copy1 copy.one -n 3 -t "$T" --raw; then
        copy1_pid=$sub_pid
        if start_sub copy2 copy.rec.p.x -n 1 -t "$T"; then
                run cli replay --speed max --rename rec.one=copy.one --prefix copy. "$dir/one.rec"
                replay_rc=$rc
                finish_sub
                copy2_rc=$sub_rc
        else
                not_ok "replay: the second sub subscribes" "$dir/copy2.err"
        fi
        sub_pid=$copy1_pid
        finish_sub
        printf '\001\000\000\0001\001\000\000\0002\003\000\000\000a\000b' >"$dir/copy1.expected"
        check "replay --speed max into renamed topics reproduces payloads and order" \
                eval '[ "$replay_rc" -eq 0 ] && [ "$copy2_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ] &&
                      cmp -s "$dir/copy1.expected" "$dir/copy1.out" && expect "$dir/copy2.out" "3\n"'
else
        not_ok "replay: sub subscribes" "$dir/copy1.err"
fi

# Recorded pace, checked loosely: two messages from two pub processes are
# some milliseconds apart; replayed at the recorded pace they are at least
# half as far apart (the replay waits for each record's offset). The
# recorder takes the last 2 messages, so it needs no readiness.
run cli pub gap.t a
run cli pub gap.t b
run cli record "$dir/gap.rec" gap.t -n 2 -t "$T" --history 2
rec_rc=$rc
run cli replay --print "$dir/gap.rec"
cp "$dir/last.out" "$dir/gap.print"
if start_sub gapcopy gap.copy -n 2 -t "$T" --json; then
        run cli replay --rename gap.t=gap.copy "$dir/gap.rec"
        replay_rc=$rc
        finish_sub
        cat >"$dir/gap_check.py" <<'PY'
import json, sys
rec = [json.loads(l) for l in open(sys.argv[1], "rb")]
rep = [json.loads(l) for l in open(sys.argv[2], "rb")]
assert [m["payload"] for m in rec] == ["a", "b"], rec
assert [m["payload"] for m in rep] == ["a", "b"], rep
recorded = rec[1]["ts_ns"] - rec[0]["ts_ns"]
replayed = rep[1]["ts_ns"] - rep[0]["ts_ns"]
assert recorded > 0 and replayed >= recorded / 2, (recorded, replayed)
PY
        check "replay at the recorded pace keeps the gap between messages (loosely)" \
                eval '[ "$rec_rc" -eq 0 ] && [ "$replay_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ] &&
                      python3 "$dir/gap_check.py" "$dir/gap.print" "$dir/gapcopy.out"'
else
        not_ok "replay pace: sub subscribes" "$dir/gapcopy.err"
fi

run cli replay --speed sometimes "$dir/one.rec"
check "replay: a bad --speed is a usage error" usage_error
run cli replay "$dir/blob"
check "replay of a file that is no recording fails saying so" runtime_error "not a zcbus recording"
head -c 50 "$dir/one.rec" >"$dir/cut.rec"
run cli replay --print "$dir/cut.rec"
check "replay of a cut recording fails naming the record" runtime_error "record 1: the file ends inside"
run cli record "$dir/x.rec"
check "record: a missing TOPIC is a usage error" usage_error

run cli pub --policy latest lossy a
check "pub --policy latest creates a topic" eval '[ "$rc" -eq 0 ] && [ ! -s "$dir/last.err" ]'

# EPIPE: the reader of sub's stdout is gone before the first message.
mkfifo "$dir/epipe.ready" "$dir/epipe.closed" || exit 99
(
        (
                cli sub epipe -n 3 -t "$T" --ready-fd 3 3>"$dir/epipe.ready" 2>"$dir/epipe.err"
                echo $? >"$dir/epipe.status"
        ) | (
                exec 0<&-
                echo closed >"$dir/epipe.closed"
        )
) </dev/null &
epipe_pid=$!
bg_pids="$bg_pids $epipe_pid"
read -r ready <"$dir/epipe.ready"
read -r closed <"$dir/epipe.closed"
run cli pub epipe a b c
wait "$epipe_pid"
check "sub exits 0 quietly when its stdout reader is gone" \
        eval '[ "$(cat "$dir/epipe.status")" = 0 ] && [ ! -s "$dir/epipe.err" ]'

if start_sub term term -t "$T"; then
        kill -TERM "$sub_pid"
        finish_sub
        check "sub ends on SIGTERM (status 143)" eval '[ "$sub_rc" -eq 143 ] && [ ! -s "$dir/term.err" ]'
else
        not_ok "sub SIGTERM: sub subscribes" "$dir/term.err"
fi

# ---- list ------------------------------------------------------------------------

run cli list
check "list shows a header and the topics" \
        eval '[ "$rc" -eq 0 ] && grep -q "^NAME  *POLICY  *SLOTS  *SLOT_SIZE  *PRODUCERS  *SUBSCRIBERS  *PUBLISHED  *TOPIC_ID\$" "$dir/last.out" &&
              grep -q "^rt  " "$dir/last.out" && grep -q "^hist  " "$dir/last.out" && grep -q "^stdin  " "$dir/last.out"'
check "list shows policy, slot size and a uuid" \
        eval 'grep -q "^lossy  *latest " "$dir/last.out" &&
              grep -Eq "^small  *[a-z]+  *[0-9]+  *64 .* [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\$" "$dir/last.out"'
check "list counts what was published" eval 'grep -Eq "^hist  *[a-z]+  *16  *[0-9]+  *[0-9]+  *[0-9]+  *5  " "$dir/last.out"'

run env ZCBUS_SOCKET="$sock" "$ZCBUS_CLI" list --json
check "list --json (socket from \$ZCBUS_SOCKET) prints the topics" \
        eval '[ "$rc" -eq 0 ] && grep -q "\"name\": \"rt\"" "$dir/last.out" && grep -q "\"policy\": \"latest\"" "$dir/last.out"'
if command -v python3 >/dev/null 2>&1; then
        check "list --json is valid JSON with one object per topic" \
                python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
names = {t["name"] for t in v}
assert {"rt", "stdin", "hist", "small", "lossy"} <= names, names' "$dir/last.out"
fi

# A name is anybody's words: what a terminal would obey (C1 controls in
# UTF-8, bytes outside UTF-8) comes out as \xNN; other UTF-8 as it is.
evil=$(printf 'ev\302\2330m\377.\303\251')
run cli pub "$evil" x
run cli list "ev*"
check "list shows C1 controls and bytes outside UTF-8 in a name as \\xNN, other UTF-8 as is" \
        eval '[ "$rc" -eq 0 ] && grep -qF "ev\\xc2\\x9b0m\\xff.$(printf "\303\251") " "$dir/last.out" &&
              ! LC_ALL=C grep -q "$(printf "\233")" "$dir/last.out"' "$dir/last.out"

run cli list hist 'sm?ll'
check "list PATTERN... shows only the topics matching a glob" \
        eval '[ "$rc" -eq 0 ] && [ "$(lines "$dir/last.out")" -eq 3 ] && grep -q "^hist  " "$dir/last.out" &&
              grep -q "^small  " "$dir/last.out"'

# ---- stat, top, topic rm -------------------------------------------------------

run cli stat
check "stat: missing TOPIC is a usage error" usage_error
run cli stat nosuch.topic
check "stat of an unknown topic fails naming it" runtime_error "nosuch.topic"
run cli topic frob x
check "topic: an unknown action is a usage error" usage_error

# Subscriber a reads; subscriber b is stopped; the producer fills the
# 4-slot ring and blocks behind b, which the broker must show as gating.
if start_sub gate_a gate.t --slots 4 --slot-size 64 -n 8 -t "$T" && a_pid=$sub_pid &&
        start_sub gate_b gate.t -n 8 -t "$T"; then
        b_pid=$sub_pid
        kill -STOP "$b_pid"
        "$ZCBUS_CLI" -s "$sock" pub gate.t -t "$T" 1 2 3 4 5 6 7 8 </dev/null >"$dir/gate_pub.out" 2>&1 &
        pub_pid=$!
        bg_pids="$bg_pids $pub_pid"
        # Wait for the event (the ring full from b's floor, and a, which
        # reads, past it: one subscriber gating), not for a time.
        i=0
        while [ $i -lt 2000 ]; do
                run cli stat --json gate.t
                [ "$(grep -c '"gating": true' "$dir/last.out")" -eq 1 ] && break
                i=$((i + 1))
        done
        cp "$dir/last.out" "$dir/gate.json"
        check "stat --json shows the stopped subscriber gating the reliable topic" grep -q '"gating": true' "$dir/gate.json"
        if command -v python3 >/dev/null 2>&1; then
                check "stat --json: the producer and both subscribers with their pids, comm, lag and holds" \
                        python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
pub, a, b = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
assert d["name"] == "gate.t" and d["policy"] == "reliable" and d["slots"] == 4 and d["stall_ms"] == 60000, d
assert d["producers"] == 1 and d["subscribers"] == 2 and d["memory_bytes"] > 0 and d["head"] >= 4, d
es = {e["pid"]: e for e in d["entries"]}
assert set(es) == {pub, a, b}, es
for e in es.values():
    assert e["comm"].endswith("zcbus") and e["state"] == "live" and len(e["session"]) == 36, e
assert es[pub]["role"] == "pub" and es[pub]["published"] >= 4 and not es[pub]["gating"], es[pub]
assert es[b]["role"] == "sub" and es[b]["gating"] and es[b]["lag"] == 4 and es[b]["held"] == 0, es[b]
assert es[b]["received"] == 0 and es[b]["floor"] == es[b]["next"], es[b]
assert es[a]["role"] == "sub" and not es[a]["gating"], es[a]
assert [e["pid"] for e in d["entries"] if e["gating"]] == [b]' "$dir/gate.json" "$pub_pid" "$a_pid" "$b_pid"
        fi
        run cli stat gate.t
        check "stat names the gating subscriber in its table and in words" \
                eval '[ "$rc" -eq 0 ] && grep -Eq "^sub +[0-9]+ live +$b_pid .* gating " "$dir/last.out" &&
                      grep -q "^subscriber [0-9]* (pid $b_pid zcbus) gates the topic" "$dir/last.out" &&
                      grep -q "^ROLE  *INDEX  *STATE  *PID  *UID  *COMM  *POSITION  *LAG  *HELD " "$dir/last.out"'
        run cli topic rm gate.t
        check "topic rm of a topic in use is refused, naming who holds it" \
                eval 'runtime_error "is in use" && grep -q "pid $pub_pid" "$dir/last.err"'
        kill -CONT "$b_pid"
        wait "$pub_pid"
        pub_rc=$?
        bg_pids=$(echo "$bg_pids" | sed "s/ $pub_pid\$//; s/ $pub_pid / /")
        finish_sub
        b_rc=$sub_rc
        sub_pid=$a_pid
        finish_sub
        check "the stopped subscriber, continued, gets everything; the producer finishes" \
                eval '[ "$pub_rc" -eq 0 ] && [ "$b_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ] && [ "$(lines "$dir/gate_b.out")" -eq 8 ]'
        run cli topic rm gate.t
        check "topic rm deletes the idle topic" eval '[ "$rc" -eq 0 ] && [ ! -s "$dir/last.err" ]'
        run cli list gate.t
        check "the deleted topic is gone from list" eval '[ "$rc" -eq 0 ] && [ "$(lines "$dir/last.out")" -eq 1 ]'
        run cli topic rm gate.t
        check "topic rm of an unknown topic fails" runtime_error "gate.t"
else
        not_ok "stat: the gate subscribers subscribe" "$dir/gate_a.err" "$dir/gate_b.err"
fi

if start_sub topw topw -n 1 -t "$T"; then
        run cli top -n 2 -d 0.1 --json topw hist
        top_rc=$rc
        cp "$dir/last.out" "$dir/top.json"
        run cli top -n 2 -d 0.1 topw
        check "top without a terminal prints one table per refresh" \
                eval '[ "$rc" -eq 0 ] && [ "$(grep -c "^TOPIC/ROLE" "$dir/last.out")" -eq 2 ] && grep -q "^  sub  " "$dir/last.out"'
        run cli pub topw done
        finish_sub
        if command -v python3 >/dev/null 2>&1; then
                check "top --json: one object per refresh, rates from the second on" \
                        python3 -c 'import json, sys
assert int(sys.argv[2]) == 0
ls = open(sys.argv[1]).read().splitlines()
assert len(ls) == 2, ls
one, two = [json.loads(l) for l in ls]
assert one["interval_s"] is None and two["interval_s"] > 0, (one, two)
assert sorted(t["name"] for t in two["topics"]) == ["hist", "topw"], two
for t in one["topics"]:
    assert t["publish_rate"] is None and all(e["rate"] is None for e in t["entries"]), t
for t in two["topics"]:
    assert t["publish_rate"] >= 0, t
    assert all(e["rate"] >= 0 for e in t["entries"]), t
topw = [t for t in two["topics"] if t["name"] == "topw"][0]
assert [e["role"] for e in topw["entries"]] == ["sub"], topw' "$dir/top.json" "$top_rc"
        fi
else
        not_ok "top: the subscriber subscribes" "$dir/topw.err"
fi

# ---- peers ---------------------------------------------------------------------

run cli peers extra
check "peers takes no argument" usage_error "extra"
if start_sub peersw peersw -n 1 -t "$T"; then
        psub_pid=$sub_pid
        run cli peers --json
        cp "$dir/last.out" "$dir/peers.json"
        run cli peers
        check "peers shows the subscriber's session in a table" \
                eval '[ "$rc" -eq 0 ] && grep -q "^SESSION  *PID  *UID  *COMM  *PUBS  *SUBS  *LABEL" "$dir/last.out" &&
                      grep -Eq "^[0-9a-f-]{36} +$psub_pid +[0-9]+ zcbus +0 +1 -\$" "$dir/last.out"'
        run cli pub peersw done
        finish_sub
        if command -v python3 >/dev/null 2>&1; then
                check "peers --json: every session, the subscriber holding one entry, the asker itself" \
                        python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
ps = {p["pid"]: p for p in d["peers"]}
s = ps[int(sys.argv[2])]
assert s["subscribers"] == 1 and s["producers"] == 0 and s["comm"] == "zcbus" and s["label"] == "", s
assert s["counters"] == {} and len(s["session"]) == 36, s
assert len(ps) >= 2, ps' "$dir/peers.json" "$psub_pid"
        fi
else
        not_ok "peers: the subscriber subscribes" "$dir/peersw.err"
fi

# ---- bash completion ---------------------------------------------------------

if command -v bash >/dev/null 2>&1 && [ -n "${ZCBUS_SRCDIR:-}" ]; then
        # complete WORDS...: what the completion offers for the last word.
        cat >"$dir/complete.sh" <<'SH'
set -u
src=$1 kind=$2
shift 2
source "$src/completions/$kind" || exit 3
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
"_$kind" || exit 4
printf '%s\n' "${COMPREPLY[@]}"
SH
        run bash "$dir/complete.sh" "$ZCBUS_SRCDIR" zcbus "$ZCBUS_CLI" re
        check "bash completion of zcbus sources cleanly and completes commands" \
                eval '[ "$rc" -eq 0 ] && [ ! -s "$dir/last.err" ] && expect "$dir/last.out" "record\nreplay\n"'
        run bash "$dir/complete.sh" "$ZCBUS_SRCDIR" zcbus "$ZCBUS_CLI" sub --js
        check "bash completion of zcbus completes a command's options" \
                eval '[ "$rc" -eq 0 ] && expect "$dir/last.out" "%s\n" --json'
        run bash "$dir/complete.sh" "$ZCBUS_SRCDIR" zcbus "$ZCBUS_CLI" -s "$sock" sub -n 2 rec.
        check "bash completion of zcbus completes topic names from the broker given with -s" \
                eval '[ "$rc" -eq 0 ] && expect "$dir/last.out" "rec.one\nrec.p.x\n"'
        run bash "$dir/complete.sh" "$ZCBUS_SRCDIR" zcbus "$ZCBUS_CLI" -s "$sock" topic rm rec.
        check "bash completion of zcbus completes topic rm with topic names" \
                eval '[ "$rc" -eq 0 ] && expect "$dir/last.out" "rec.one\nrec.p.x\n"'
        run bash "$dir/complete.sh" "$ZCBUS_SRCDIR" zcbus "$ZCBUS_CLI" pub --policy l
        check "bash completion of zcbus completes option values" eval '[ "$rc" -eq 0 ] && expect "$dir/last.out" "latest\n"'
        run bash "$dir/complete.sh" "$ZCBUS_SRCDIR" zcbusd "$ZCBUSD" --fore
        check "bash completion of zcbusd sources cleanly and completes options" \
                eval '[ "$rc" -eq 0 ] && [ ! -s "$dir/last.err" ] && expect "$dir/last.out" "%s\n" --foreground'
fi

# ---- lat and perf: the measuring tools, with baselines, briefly ---------------

run cli lat -n 2000 --warmup 200 --wait spin --baseline all
check "lat --baseline all measures zcbus, uds, pipe and shm and prints ratios" \
        eval '[ "$rc" -eq 0 ] && [ ! -s "$dir/last.err" ] &&
              grep -Eq "^zcbus +64 +[0-9]+ +[0-9]+" "$dir/last.out" && grep -Eq "^uds +64 " "$dir/last.out" &&
              grep -Eq "^pipe +64 " "$dir/last.out" && grep -Eq "^shm +64 " "$dir/last.out" &&
              grep -q "^ratio zcbus/shm 64: p50 " "$dir/last.out" && grep -q "^ratio zcbus/uds 64: p50 " "$dir/last.out"'
run cli lat -n 1000 --warmup 100 --timestamp --size 64,4K --json --baseline shm
check "lat --timestamp --json reports the option and both sizes" \
        eval '[ "$rc" -eq 0 ] && grep -q "\"timestamp\":true" "$dir/last.out" && grep -q "\"size\":4096" "$dir/last.out"'
if command -v python3 >/dev/null 2>&1; then
        check "lat --json is valid JSON" python3 -m json.tool "$dir/last.out"
fi
run cli lat --timestamp=1
check "lat: --timestamp takes no value" usage_error
run cli perf -d 0.2 --rounds 1 --baseline shm,pipe --json
check "perf --baseline --json runs and reports zcbus and the baselines" \
        eval '[ "$rc" -eq 0 ] && grep -q "\"transport\":\"zcbus\"" "$dir/last.out" &&
              grep -q "\"transport\":\"shm\"" "$dir/last.out" && grep -q "\"transport\":\"pipe\"" "$dir/last.out"'
if command -v python3 >/dev/null 2>&1; then
        check "perf --json is valid JSON" python3 -m json.tool "$dir/last.out"
fi
run cli perf --batch 16 --zero-copy -d 0.1 --rounds 1 --baseline shm --json
check "perf --batch --zero-copy runs beside shm and says so in the JSON" \
        eval '[ "$rc" -eq 0 ] && grep -q "\"zero_copy\":true" "$dir/last.out" &&
              grep -q "\"transport\":\"zcbus\"" "$dir/last.out" && grep -q "\"transport\":\"shm\"" "$dir/last.out"'
run cli perf --zero-copy
check "perf: --zero-copy needs --batch" usage_error
run cli perf --fanout 1,1
check "perf: --fanout wants distinct counts" usage_error
run cli perf --fanout 4 -c 2
check "perf: --fanout does not go with -c" usage_error
run cli perf --rate 100
check "perf: --rate needs --fanout" usage_error
run cli lat --wait spin,spin
check "lat: --wait wants distinct modes" usage_error
run cli lat --ping --wait fd,futex
check "lat: --ping measures one wait mode" usage_error
run cli lat -n 200 --wait fd,futex,spin --json
check "lat --wait fd,futex,spin runs and exits 0" eval '[ "$rc" -eq 0 ] && [ ! -s "$dir/last.err" ]'
if command -v python3 >/dev/null 2>&1; then
        cat >"$dir/latwait.py" <<'EOF'
import json, sys

d = json.load(open(sys.argv[1]))
assert d["wait"] == "fd,futex,spin", d["wait"]
zc = [r for r in d["results"] if r["transport"] == "zcbus"]
assert [r["wait"] for r in zc] == ["fd", "futex", "spin"], zc
for r in zc:
    assert r["size"] == 64 and r["count"] == 200, r
EOF
        check "lat --wait fd,futex,spin --json has one zcbus result per mode, labelled" \
                python3 "$dir/latwait.py" "$dir/last.out"
fi
run cli lat -n 200 --warmup 20 --wait fd --json
check "lat --wait fd (poll on zcbus_sub_fd) measures round trips and says so in the JSON" \
        eval '[ "$rc" -eq 0 ] && [ ! -s "$dir/last.err" ] && grep -q "\"wait\":\"fd\"" "$dir/last.out" &&
              grep -q "\"transport\":\"zcbus\",\"size\":64,\"count\":200," "$dir/last.out"'
run cli perf --wait fd
check "perf: --wait fd is lat's alone" usage_error

# The fan-out curve, tiny: 2 policies x 2 wait modes x 2 counts x 2
# transports. Only what it reports is checked, never how fast.
run cli perf --fanout 1,4 -d 0.05 --rate 2000 --wait futex,spin --policy reliable,latest --baseline shm --json
check "perf --fanout --json runs every point" \
        eval '[ "$rc" -eq 0 ] && [ ! -s "$dir/last.err" ] && grep -q "\"mode\":\"fanout\"" "$dir/last.out" &&
              grep -q "\"cpu_ns_per_pub\":" "$dir/last.out" && grep -q "\"last\":{\"p50_ns\":" "$dir/last.out"'
if command -v python3 >/dev/null 2>&1; then
        cat >"$dir/fanout.py" <<'EOF'
import json, sys

d = json.load(open(sys.argv[1]))
pts = d["points"]
assert d["subscribers"] == [1, 4] and d["rate"] == 2000 and len(pts) == 16, "one point per combination"
seen = {(p["transport"], p["policy"], p["wait"], p["subscribers"]) for p in pts}
assert len(seen) == 16, "every combination once"
num = ("gap_ns", "published", "cpu_ns_per_pub", "cpu_bracket_ns", "msgs_per_s_pub", "msgs_per_s_sub",
       "msgs_per_s_min_sub", "msgs_per_s_sum", "delivered", "lost", "waits", "wakeups", "sleeps", "samples")
for p in pts:
    for k in num:
        assert isinstance(p[k], (int, float)) and p[k] >= 0, (k, p)
    for side in ("first", "last"):
        for k in ("p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns", "mean_ns"):
            assert isinstance(p[side][k], (int, float)), (side, k, p)
    assert p["gap_ns"] == 500000 and p["published"] >= 1 and p["samples"] >= 1, p
    assert p["first"]["p50_ns"] <= p["last"]["p50_ns"], p
    n = p["subscribers"]
    if p["policy"] == "reliable":
        assert p["delivered"] == n * p["published"] and p["lost"] == 0, p
    else:
        assert p["delivered"] + p["lost"] <= n * p["published"], p
EOF
        check "perf --fanout --json has every field, and reliable delivers every message to every subscriber" \
                python3 "$dir/fanout.py" "$dir/last.out"
fi

run cli list 'zcbus.*'
check "lat and perf (fan-out too) leave no topic behind" eval '[ "$rc" -eq 0 ] && [ "$(lines "$dir/last.out")" -eq 1 ]'

finish
