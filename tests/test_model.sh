#!/bin/sh
# SPDX-License-Identifier: MIT
# test_model.sh: exhaustive checks of the ring protocol's Promela model
# (tests/model/zcbus.pml and relay.pml, described in tests/model/README.md)
# with spin.
#
# The good model must pass every check; each known bug, switched back in
# with ZM_BUG, must make spin report a counterexample of the property it
# breaks, so this test notices a model that stopped checking anything.
# One pan per policy and search mode is compiled; sizes and bugs are
# chosen at run time (ZM_* in the environment of ./pan). Searches run two
# at a time.
#
# Prints one ok:/FAIL: line per property and per bug variant and a
# summary; exits 1 on any failure, 77 (skip) without spin or a C compiler.

set -u

if ! command -v spin >/dev/null 2>&1; then
        echo "SKIP: spin is not installed (apt-get install spin)"
        exit 77
fi
cc=${MODEL_CC:-}
[ -n "$cc" ] || cc=$(command -v gcc || command -v cc) || { echo "SKIP: no C compiler"; exit 77; }

src=${ZCBUS_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
model=$src/tests/model/zcbus.pml
relay=$src/tests/model/relay.pml
[ -f "$model" ] || { echo "FAIL: no model at $model"; exit 1; }
[ -f "$relay" ] || { echo "FAIL: no model at $relay"; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/zcbus-model.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT INT TERM

passed=0
failed=0
start=$(date +%s)

# Bounds of every search: depth (steps), memory (MB), hash table (2^N).
DEPTH=20000
MEMLIM=3000
HASH=24

# build NAME "spin -D flags" "cc flags" [MODEL]: spin -a, then compile
# pan (of zcbus.pml unless MODEL is given).
build() {
        mkdir -p "$dir/$1" || return 1
        (
                cd "$dir/$1" || exit 1
                cp "${4:-$model}" model.pml
                # shellcheck disable=SC2086
                spin -a $2 model.pml >spin.log 2>&1 &&
                        $cc -O1 -w -DMEMLIM=$MEMLIM -DCOLLAPSE $3 -o pan pan.c >cc.log 2>&1
        )
}

# search OUT PAN "ENV" [pan flags]: run one search, its output in OUT,
# its verdict in OUT.res: pass, the name of the property violated, cycle,
# bound (a search bound was hit, which proves nothing) or error.
search() {
        o=$1 pan=$2 envs=$3
        shift 3
        t0=$(date +%s)
        # shellcheck disable=SC2086
        (cd "$dir/$pan" && env $envs ./pan -E -m$DEPTH -w$HASH "$@") >"$o" 2>&1
        echo $(($(date +%s) - t0)) >"$o.time"
        if v=$(grep -oE "assertion violated [a-z_]+" "$o" | head -1) && [ -n "$v" ]; then
                r=${v#assertion violated }
        elif grep -q "^pan:1: non-progress cycle" "$o"; then
                r=cycle
        elif grep -qE "max search depth too small|out of memory" "$o"; then
                r=bound
        elif grep -q "errors: 0" "$o"; then
                r=pass
        else
                r=error
        fi
        echo "$r" >"$o.res"
}

# run_all LIST: the searches of LIST (lines name|pan|env|...), two at a
# time; the output of search NAME is $dir/out.NAME.
run_all() {
        running=0
        printf '%s\n' "$1" >"$dir/list"
        while IFS='|' read -r name pan envs _; do
                [ -n "$name" ] || continue
                case $pan in *np) flags=-l ;; *) flags= ;; esac
                # shellcheck disable=SC2086
                search "$dir/out.$name" "$pan" "$envs" $flags &
                running=$((running + 1))
                if [ "$running" -ge 2 ]; then
                        wait
                        running=0
                fi
        done <"$dir/list"
        wait
}

states() {
        awk '/states, stored/ { print $1; exit }' "$1"
}

# --- build the four pans, two at a time ----------------------------------
build rel "" "-DSAFETY" & b1=$!
build lat "-DLATEST" "-DSAFETY" & b2=$!
wait $b1 && wait $b2 || { echo "FAIL: spin -a or the compiler failed"; cat "$dir"/*/spin.log "$dir"/*/cc.log; exit 1; }
build relnp "" "-DNP" & b1=$!
build latnp "-DLATEST" "-DNP" & b2=$!
wait $b1 && wait $b2 || { echo "FAIL: spin -a or the compiler failed"; cat "$dir"/*/spin.log "$dir"/*/cc.log; exit 1; }
# the relayed wake of the readers (R): relay.pml
build relay "" "-DSAFETY" "$relay" & b1=$!
build relaynp "" "-DNP" "$relay" & b2=$!
wait $b1 && wait $b2 || { echo "FAIL: spin -a or the compiler failed"; cat "$dir"/*/spin.log "$dir"/*/cc.log; exit 1; }

# --- the good model --------------------------------------------------------
# name|pan|environment|what it is|the properties it checks. Every safety
# search also ends in the final check at quiescence (no_lost_wakeup,
# no_stall, all_stamped); the non-progress searches (-l) show that the
# model has no infinite run at all, so that the final check sees the end
# of every run, and, with deadlines, that every receive ends. The longest
# searches come first, so that the pairs run_all makes end together.
configs='
relaynp|relaynp|ZR_M0=1 ZR_MAXCRASH=0|relayed wake, non-progress search|no_infinite_run
rel2|rel|ZM_M0=2 ZM_M1=1 ZM_MAXCRASH=1 ZM_CRASHERS=1|reliable, a lap (3 msgs, 2 slots), producer 0 may crash|no_lost_wakeup floor_safe no_torn_read repair_safe all_stamped no_stall
lat2|lat|ZM_M0=2 ZM_M1=1 ZM_MAXCRASH=0 ZM_MAXHOLD=2 ZM_SEQLIM=5|latest, a lap, 2 holds (held slots skipped)|no_lost_wakeup hold_safe no_torn_read all_stamped no_stall
rel3|rel|ZM_M0=2 ZM_M1=1 ZM_MAXCRASH=1 ZM_CRASHERS=4 ZM_MAXHOLD=2|reliable, a lap, 2 holds, the subscriber may crash|no_lost_wakeup floor_safe no_torn_read all_stamped no_stall
relay2|relay|ZR_M0=1 ZR_MAXCRASH=1 ZR_CRASHERS=1|relayed wake, 3 readers, reader 0 may die at any step (the readers are symmetric)|relay_no_lost_wakeup
np1|relnp|ZM_M0=1 ZM_M1=1 ZM_MAXCRASH=1 ZM_CRASHERS=1|reliable, non-progress search, producer 0 may crash|no_infinite_run
lat3|lat|ZM_M0=2 ZM_M1=1 ZM_MAXCRASH=1 ZM_CRASHERS=4 ZM_SEQLIM=5|latest, a lap, the subscriber may crash|no_lost_wakeup hold_safe no_torn_read all_stamped no_stall
relay1|relay|ZR_M0=1 ZR_MAXCRASH=0|relayed wake, 3 readers sleeping, 1 msg, no death: the relay alone|relay_no_lost_wakeup
relayany|relay|ZR_UNTAGGED=6 ZR_M0=1 ZR_MAXCRASH=0|relayed wake, readers 1 and 2 on futex_waitv (untagged), 1 msg, no death|relay_no_lost_wakeup
lat1|lat|ZM_M0=1 ZM_M1=1 ZM_MAXCRASH=1 ZM_MAXHOLD=2|latest, 2 producers x 1 msg, 2 holds, any peer may crash|no_lost_wakeup hold_safe no_torn_read repair_safe all_stamped no_stall
np3|latnp|ZM_M0=1 ZM_M1=1 ZM_MAXCRASH=0 ZM_MAXHOLD=2 ZM_DEADLINE=1 ZM_R=3|latest, non-progress search, receives with deadlines|recv_terminates no_infinite_run
rel1|rel|ZM_M0=1 ZM_M1=1 ZM_MAXCRASH=1|reliable, 2 producers x 1 msg, 1 sub, any peer may crash|no_lost_wakeup floor_safe no_torn_read repair_safe all_stamped no_stall
np2|relnp|ZM_M0=1 ZM_M1=1 ZM_MAXCRASH=0 ZM_DEADLINE=1 ZM_R=3|reliable, non-progress search, receives with deadlines|recv_terminates no_infinite_run
'
props="no_lost_wakeup hold_safe floor_safe no_torn_read repair_safe all_stamped no_stall no_infinite_run recv_terminates relay_no_lost_wakeup"
bad_props=

run_all "$configs"
echo "# searches of the good model:"
printf '%s\n' "$configs" >"$dir/list"
while IFS='|' read -r name pan envs what checks; do
        [ -n "$name" ] || continue
        o=$dir/out.$name
        res=$(cat "$o.res" 2>/dev/null || echo error)
        echo "#   $name, $what: $(states "$o") states, $(cat "$o.time" 2>/dev/null) s: $res"
        if [ "$res" != pass ]; then
                bad_props="$bad_props $checks"
                echo "# FAILED search $name ($envs): $res"
                sed -n '1,12p' "$o" | sed 's/^/#     /'
        fi
done <"$dir/list"

for p in $props; do
        where=$(printf '%s\n' "$configs" | awk -F'|' -v p="$p" 'NF == 5 { n = split($5, a, " "); for (i = 1; i <= n; i++) if (a[i] == p) printf "%s%s", (c++ ? " " : ""), $1 }')
        case " $bad_props " in
        *" $p "*) echo "FAIL: $p ($where)"; failed=$((failed + 1)) ;;
        *) echo "ok: $p ($where)"; passed=$((passed + 1)) ;;
        esac
done

# --- the known bugs: spin must find each one -----------------------------
# name|pan|environment|the properties its counterexample may break
bugs='
BUG_NO_EVICT_WAKE|rel|ZM_BUG=1 ZM_MAXCRASH=1|no_lost_wakeup
BUG_WAKE_BEFORE_STORE|rel|ZM_BUG=2 ZM_MAXCRASH=0|no_lost_wakeup
BUG_ARM_FIRST|rel|ZM_BUG=3 ZM_MAXCRASH=0|no_lost_wakeup
BUG_NO_RECHECK|lat|ZM_BUG=4 ZM_M0=2 ZM_MAXCRASH=0 ZM_SEQLIM=5|no_torn_read hold_safe
BUG_NO_HOLD_CHECK|lat|ZM_BUG=5 ZM_M0=2 ZM_MAXCRASH=0 ZM_SEQLIM=5|hold_safe no_torn_read
BUG_NO_GATE|rel|ZM_BUG=6 ZM_M0=2 ZM_MAXCRASH=0|floor_safe
BUG_NO_PENDING_WAIT|rel|ZM_BUG=7 ZM_MAXCRASH=1|repair_safe
BUG_ABANDON_NO_FLOOR|rel|ZM_BUG=8 ZM_M0=2 ZM_MAXCRASH=1 ZM_CRASHERS=1|floor_safe
BUG_REPAIR_NO_HOLES|rel|ZM_BUG=9 ZM_MAXCRASH=1|all_stamped no_lost_wakeup no_stall
BUG_NO_TRANSIENT_WAKE|lat|ZM_BUG=10 ZM_M0=2 ZM_MAXCRASH=0 ZM_MAXHOLD=2 ZM_SEQLIM=5|no_lost_wakeup
BUG_RESLEEP|relnp|ZM_BUG=11 ZM_MAXCRASH=0 ZM_DEADLINE=1|cycle
BUG_RELAY_NO_WAKE|relay|ZR_BUG=1 ZR_M0=1 ZR_MAXCRASH=0|relay_no_lost_wakeup
BUG_WAKE_UNTAGGED|relay|ZR_BUG=2 ZR_M0=1 ZR_MAXCRASH=0|relay_no_lost_wakeup
BUG_RELAY_CAS_OLD|relay|ZR_BUG=3 ZR_M0=2 ZR_MAXCRASH=0|relay_no_lost_wakeup
BUG_WAKER_MARKS|relay|ZR_BUG=4 ZR_M0=1 ZR_MAXCRASH=0|relay_no_lost_wakeup
BUG_RELAY_DIES_NO_EVICT_WAKE|relay|ZR_BUG=5 ZR_M0=1 ZR_MAXCRASH=1 ZR_CRASHERS=1 ZR_CRASHPTS=8|relay_no_lost_wakeup
BUG_WAKE_BEFORE_BUMP|relay|ZR_BUG=6 ZR_M0=1 ZR_MAXCRASH=0|relay_no_lost_wakeup
BUG_WAITANY_NO_FORCE|relay|ZR_BUG=7 ZR_UNTAGGED=6 ZR_M0=1 ZR_MAXCRASH=0|relay_no_lost_wakeup
'
run_all "$bugs"
printf '%s\n' "$bugs" >"$dir/list"
while IFS='|' read -r name pan envs want; do
        [ -n "$name" ] || continue
        o=$dir/out.$name
        res=$(cat "$o.res" 2>/dev/null || echo error)
        case " $want " in
        *" $res "*)
                echo "ok: $name: spin finds a counterexample ($res, $(states "$o") states, $(cat "$o.time") s)"
                passed=$((passed + 1)) ;;
        *)
                echo "FAIL: $name: expected a counterexample of $want, got: $res"
                sed -n '1,12p' "$o" | sed 's/^/#     /'
                failed=$((failed + 1)) ;;
        esac
done <"$dir/list"

echo "# $(($(date +%s) - start)) s in all"
echo "test_model: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
