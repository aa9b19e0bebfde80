#!/bin/sh
# SPDX-License-Identifier: MIT
# test_examples.sh: the event-loop examples (examples/*.c), the way a user
# gets them: `make install` (into a staging DESTDIR), each example built
# with `cc x.c $(pkg-config --cflags --libs zcbus ...)` against that
# install alone, then run against a real zcbusd on a private socket with
# `zcbus pub` feeding the topics and `zcbus sub` reading what they publish.
# Content, order and counts are checked, and that SIGTERM ends each loop
# cleanly (exit 0, its summary line).
#
# EXAMPLES says which to run: "libev epoll" (the default) or "glib"
# (tests/test_examples_glib.sh), so that a missing GLib skips its own test
# (exit 77) and not the others. Run by `make check` with ZCBUSD,
# ZCBUS_CLI, ZCBUS_BUILDDIR, ZCBUS_SRCDIR and EXAMPLES_CC set.
#
# Nothing here sleeps to wait: the broker and `zcbus sub` report READY on
# a fifo, and each example's first line on stderr says it has subscribed.
# Each example runs under `timeout --foreground -s KILL` as a safety net
# only (a hang fails a check; no check depends on timing); --foreground,
# so that a SIGTERM to timeout reaches the example once, not again through
# its process group.

# The checks are strings eval'd by check(), hence SC2016 and SC2034 (and SC2317:
# the functions it and the traps call look unreachable to shellcheck).
# shellcheck disable=SC2016,SC2034,SC2317

set -u
# ok, not_ok, finish and the signal traps
. "$(dirname "$0")/tap.sh"

for v in ZCBUSD ZCBUS_CLI ZCBUS_BUILDDIR ZCBUS_SRCDIR; do
        if eval "[ -z \"\${$v:-}\" ]"; then
                echo "SKIP: $v must be set (make check sets it)"
                exit 77
        fi
done
EXAMPLES=${EXAMPLES:-libev epoll}
CC_EX=${EXAMPLES_CC:-cc}
T=$((20 * ${ZCBUS_TEST_SCALE:-1})) # seconds: safety net for each example and sub

if ! command -v pkg-config >/dev/null 2>&1; then
        echo "SKIP: no pkg-config"
        exit 77
fi
case " $EXAMPLES " in
*" glib "*)
        if ! pkg-config --exists glib-2.0; then
                echo "SKIP: pkg-config finds no glib-2.0 (Debian: apt-get install libglib2.0-dev; scripts/deps.sh does)"
                exit 77
        fi
        ;;
esac
if [ ! -r /usr/include/ev.h ] && ! pkg-config --exists libev; then
        case " $EXAMPLES " in
        *" libev "*)
                echo "SKIP: no libev (Debian: apt-get install libev-dev)"
                exit 77
                ;;
        esac
fi

tap_workdir examples

# check DESCRIPTION FILES CONDITION...: ok if the condition succeeds, else
# not ok with FILES (space-separated) shown.
check() {
        desc=$1 files=$2
        shift 2
        if "$@"; then
                ok "$desc"
        else
                # shellcheck disable=SC2086
                not_ok "$desc" $files
                echo "# statuses: pub ${pub_rc:-} example ${ex_rc:-} background ${bg_rc:-} sub ${sum_rc:-}"
        fi
}

cli() {
        "$ZCBUS_CLI" -s "$sock" "$@"
}

# expect FILE FORMAT [ARGS...]: FILE holds exactly printf FORMAT ARGS.
expect() {
        f=$1
        shift
        # shellcheck disable=SC2059
        printf "$@" >"$dir/expected"
        cmp -s "$dir/expected" "$f"
}

# start_sub NAME SUB-ARGS...: a background `zcbus sub`, output in
# $dir/NAME.out; returns once it has subscribed. Its pid is $sub_pid.
start_sub() {
        name=$1
        shift
        mkfifo "$dir/$name.ready" || return 1
        "$ZCBUS_CLI" -s "$sock" sub -t "${T}000" "$@" --ready-fd 3 3>"$dir/$name.ready" \
                >"$dir/$name.out" 2>"$dir/$name.err" </dev/null &
        sub_pid=$!
        bg_pids="$bg_pids $sub_pid"
        ready=
        read -r ready <"$dir/$name.ready"
        [ "$ready" = READY ]
}

# wait_bg PID: reap a background process; its status in $bg_rc.
wait_bg() {
        wait "$1" 2>/dev/null
        bg_rc=$?
        bg_pids=$(echo "$bg_pids" | sed "s/ $1\$//; s/ $1 / /")
}

# start_ex NAME EXAMPLE ARGS...: run a built example in the background
# (stdout in $dir/NAME.out, stderr in $dir/NAME.err) and return once its
# first line on stderr, which it prints once subscribed, has come; 0 if
# that line contains "subscribed" or "adding up". Its pid is $ex_pid.
start_ex() {
        name=$1 ex=$2
        shift 2
        mkfifo "$dir/$name.errfifo" || return 1
        timeout --foreground -s KILL "$T" "$dir/bin/$ex" -s "$sock" "$@" \
                >"$dir/$name.out" 2>"$dir/$name.errfifo" </dev/null &
        ex_pid=$!
        bg_pids="$bg_pids $ex_pid"
        exec 4<"$dir/$name.errfifo"
        first=
        read -r first <&4
        echo "$first" >"$dir/$name.err"
        # The rest of stderr, until the example exits.
        cat <&4 >>"$dir/$name.err" &
        ex_cat=$!
        exec 4<&-
        case $first in
        *subscribed* | *"adding up"*) return 0 ;;
        *) return 1 ;;
        esac
}

# read_lines FD K: copy K lines from descriptor FD (an example's stdout
# fifo) to stdout, each as soon as it comes.
read_lines() {
        k=0 line=
        while [ "$k" -lt "$2" ] && eval "read -r line <&$1"; do
                echo "$line"
                k=$((k + 1))
        done
}

# finish_ex: wait for the last example; its status in $ex_rc.
finish_ex() {
        wait_bg "$ex_pid"
        ex_rc=$bg_rc
        wait "$ex_cat" 2>/dev/null
}

# ---- install, then build the examples against the install alone ------------

stage=$dir/stage
(unset MAKEFLAGS MFLAGS MAKELEVEL; "${MAKE:-make}" -C "$ZCBUS_BUILDDIR" -s install DESTDIR="$stage") \
        >"$dir/install.log" 2>&1
install_rc=$?
pc=$(find "$stage" -name zcbus.pc 2>/dev/null | head -n 1)
check "make install DESTDIR=... installs zcbus.pc" "$dir/install.log" eval '[ "$install_rc" -eq 0 ] && [ -n "$pc" ]'
[ -n "$pc" ] || finish
# The staged zcbus.pc names the configured prefix; the files are under
# $stage. Point prefix there, for zcbus alone (--define-variable applies
# to every package named in the same call, so glib-2.0 is asked apart).
prefix=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --variable=prefix zcbus)
zpc() {
        PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --define-variable=prefix="$stage$prefix" "$@" zcbus
}
libdir=$(zpc --variable=libdir)
check "pkg-config finds the staged libzcbus" "" \
        eval '[ -e "$libdir/libzcbus.so" ] && [ -e "$(zpc --variable=includedir)/zcbus.h" ]'

mkdir -p "$dir/bin"
# build NAME EXTRA-FLAGS...: cc examples/NAME.c $(pkg-config ... zcbus) EXTRA
# with the rpath the README gives for a prefix the dynamic linker does not
# search.
build() {
        name=$1
        shift
        # shellcheck disable=SC2046,SC2086
        $CC_EX -Wall -Wextra -Werror -o "$dir/bin/$name" "$ZCBUS_SRCDIR/examples/$name.c" \
                $(zpc --cflags --libs) "$@" -Wl,-rpath,"$libdir" >"$dir/build-$name.log" 2>&1 &&
                ldd "$dir/bin/$name" >"$dir/ldd-$name.log" 2>&1 &&
                grep -q "libzcbus.so.0 => $libdir/libzcbus.so.0" "$dir/ldd-$name.log"
}

for e in $EXAMPLES; do
        case $e in
        libev)
                # Debian's libev has no pkg-config file: plain -lev then.
                if pkg-config --exists libev; then
                        # shellcheck disable=SC2046
                        build libev-service $(pkg-config --cflags --libs libev)
                else
                        build libev-service -lev
                fi
                check "libev-service builds with pkg-config against the install and runs on its libzcbus" \
                        "$dir/build-libev-service.log $dir/ldd-libev-service.log" true
                ;;
        glib)
                # shellcheck disable=SC2046
                build glib-sub $(pkg-config --cflags --libs glib-2.0)
                check "glib-sub builds with pkg-config against the install and runs on its libzcbus" \
                        "$dir/build-glib-sub.log $dir/ldd-glib-sub.log" true
                ;;
        epoll)
                build epoll-sub
                check "epoll-sub builds with pkg-config against the install and runs on its libzcbus" \
                        "$dir/build-epoll-sub.log $dir/ldd-epoll-sub.log" true
                ;;
        esac
done
[ "$failed" -eq 0 ] || finish

# ---- the broker ----------------------------------------------------------------

mkfifo "$dir/broker.ready" || exit 99
"$ZCBUSD" -f -s "$sock" --ready-fd 3 3>"$dir/broker.ready" >"$dir/broker.log" 2>&1 </dev/null &
broker_pid=$!
ready=
read -r ready <"$dir/broker.ready"
if [ "$ready" = READY ]; then
        ok "broker starts and reports READY"
else
        not_ok "broker starts and reports READY" "$dir/broker.log"
        finish
fi

# ---- libev: two topics in, one out ---------------------------------------------

# sums FILE: every line "TOPIC VALUE total TOTAL" adds VALUE to the
# previous TOTAL (the running total is consistent, whatever the order the
# loop took the two topics in).
sums() {
        awk 'NF != 4 || $3 != "total" || $4 != t + $2 { bad = 1 } { t = $4 } END { exit bad || NR == 0 }' "$1"
}

case " $EXAMPLES " in
*" libev "*)
        if start_sub lev.sum ev.sum -n 8 && start_ex lev libev-service -n 8 ev.a ev.b ev.sum; then
                cli pub ev.a 1 2 3 4 >"$dir/pub.log" 2>&1 && cli pub ev.b 10 20 30 40 >>"$dir/pub.log" 2>&1
                pub_rc=$?
                sum_pid=$sub_pid
                finish_ex
                wait_bg "$sum_pid"
                sum_rc=$bg_rc
                check "libev-service: -n 8 takes 8 numbers from two topics, publishes 8 lines and exits 0" \
                        "$dir/lev.err $dir/lev.sum.out $dir/lev.sum.err $dir/pub.log" \
                        eval '[ "$pub_rc" -eq 0 ] && [ "$ex_rc" -eq 0 ] && [ "$sum_rc" -eq 0 ] &&
                              [ "$(wc -l <"$dir/lev.sum.out")" -eq 8 ] &&
                              grep -q "8 numbers, total 110, 0 lines dropped" "$dir/lev.err"'
                check "libev-service: each topic in order, and the running total adds up to 110" \
                        "$dir/lev.sum.out" \
                        eval 'sums "$dir/lev.sum.out" && tail -n 1 "$dir/lev.sum.out" | grep -q " total 110\$" &&
                              grep "^ev.a " "$dir/lev.sum.out" | cut -d" " -f2 | tr "\n" , | grep -qx "1,2,3,4," &&
                              grep "^ev.b " "$dir/lev.sum.out" | cut -d" " -f2 | tr "\n" , | grep -qx "10,20,30,40,"'
        else
                not_ok "libev-service subscribes" "$dir/lev.err" "$dir/lev.sum.err"
        fi

        # More than a ring's worth (the default 256 slots) through the
        # service, so its producers wait for it while it works the loop.
        if start_sub lev2.sum ev2.sum -n 600 && start_ex lev2 libev-service ev2.a ev2.b ev2.sum; then
                cli pub -n 300 ev2.a 1 >"$dir/pub.log" 2>&1 &
                pa=$!
                cli pub -n 300 ev2.b 2 >>"$dir/pub.log" 2>&1
                pub_rc=$?
                wait "$pa" || pub_rc=$?
                sum_pid=$sub_pid
                wait_bg "$sum_pid"
                sum_rc=$bg_rc
                kill -TERM "$ex_pid"
                finish_ex
                check "libev-service: 600 numbers from two producers at once, all of them, then SIGTERM ends it (exit 0)" \
                        "$dir/lev2.err $dir/lev2.sum.err $dir/pub.log" \
                        eval '[ "$pub_rc" -eq 0 ] && [ "$sum_rc" -eq 0 ] && [ "$ex_rc" -eq 0 ] &&
                              sums "$dir/lev2.sum.out" && tail -n 1 "$dir/lev2.sum.out" | grep -q " total 900\$" &&
                              [ "$(grep -c "^ev2.a 1 " "$dir/lev2.sum.out")" -eq 300 ] &&
                              grep -q "600 numbers, total 900, 0 lines dropped" "$dir/lev2.err"'
        else
                not_ok "libev-service subscribes (second run)" "$dir/lev2.err" "$dir/lev2.sum.err"
        fi
        ;;
esac

# ---- glib: one subscription descriptor in a GMainLoop ---------------------------

case " $EXAMPLES " in
*" glib "*)
        if start_ex glib glib-sub -n 3 gl; then
                cli pub gl hello zero-copy >"$dir/pub.log" 2>&1 && cli pub gl world >>"$dir/pub.log" 2>&1
                pub_rc=$?
                finish_ex
                check "glib-sub: -n 3 prints hello, zero-copy, world and exits 0" \
                        "$dir/glib.out $dir/glib.err $dir/pub.log" \
                        eval '[ "$pub_rc" -eq 0 ] && [ "$ex_rc" -eq 0 ] && expect "$dir/glib.out" "hello\nzero-copy\nworld\n" &&
                              grep -q "3 messages" "$dir/glib.err"'
        else
                not_ok "glib-sub subscribes" "$dir/glib.err"
        fi

        if start_ex glib2 glib-sub -n 400 gl2; then
                cli pub -n 200 gl2 a b >"$dir/pub.log" 2>&1
                pub_rc=$?
                finish_ex
                check "glib-sub: 400 messages (more than the ring holds), in order" \
                        "$dir/glib2.err $dir/pub.log" \
                        eval '[ "$pub_rc" -eq 0 ] && [ "$ex_rc" -eq 0 ] && [ "$(wc -l <"$dir/glib2.out")" -eq 400 ] &&
                              paste -d" " - - <"$dir/glib2.out" | sort | uniq -c | grep -qx " *200 a b"'
        else
                not_ok "glib-sub subscribes (second run)" "$dir/glib2.err"
        fi

        # SIGTERM once it has printed two messages (read from a fifo).
        mkfifo "$dir/glib3.out" && exec 5<>"$dir/glib3.out"
        if start_ex glib3 glib-sub gl3; then
                cli pub gl3 one two >"$dir/pub.log" 2>&1
                pub_rc=$?
                read_lines 5 2 >"$dir/glib3.lines"
                kill -TERM "$ex_pid"
                finish_ex
                check "glib-sub: SIGTERM ends the loop (exit 0) after what it printed" "$dir/glib3.err $dir/pub.log" \
                        eval '[ "$pub_rc" -eq 0 ] && [ "$ex_rc" -eq 0 ] && expect "$dir/glib3.lines" "one\ntwo\n" &&
                              grep -q "2 messages" "$dir/glib3.err"'
        else
                not_ok "glib-sub subscribes (third run)" "$dir/glib3.err"
        fi
        exec 5<&-
        ;;
esac

# ---- epoll: a wait set of several topics ------------------------------------------

case " $EXAMPLES " in
*" epoll "*)
        if start_ex ep epoll-sub -n 7 ep.cam ep.imu ep.gps; then
                cli pub ep.cam f1 f2 f3 >"$dir/pub.log" 2>&1 && cli pub ep.imu x y >>"$dir/pub.log" 2>&1 &&
                        cli pub ep.gps fix1 fix2 >>"$dir/pub.log" 2>&1
                pub_rc=$?
                finish_ex
                check "epoll-sub: -n 7 over a wait set of 3 topics prints each topic's messages in order, exits 0" \
                        "$dir/ep.out $dir/ep.err $dir/pub.log" \
                        eval '[ "$pub_rc" -eq 0 ] && [ "$ex_rc" -eq 0 ] && [ "$(wc -l <"$dir/ep.out")" -eq 7 ] &&
                              grep "^ep.cam: " "$dir/ep.out" | tr "\n" , | grep -qx "ep.cam: f1,ep.cam: f2,ep.cam: f3," &&
                              grep "^ep.imu: " "$dir/ep.out" | tr "\n" , | grep -qx "ep.imu: x,ep.imu: y," &&
                              grep "^ep.gps: " "$dir/ep.out" | tr "\n" , | grep -qx "ep.gps: fix1,ep.gps: fix2," &&
                              grep -q "7 messages" "$dir/ep.err"'
        else
                not_ok "epoll-sub subscribes" "$dir/ep.err"
        fi

        # Three producers at once, 300 messages each (more than a ring),
        # then SIGTERM through the signalfd.
        if start_ex ep2 epoll-sub -n 900 ep2.a ep2.b ep2.c; then
                for t in a b c; do
                        cli pub -n 300 "ep2.$t" "$t" >"$dir/pub-$t.log" 2>&1 &
                        eval "p_$t=\$!"
                done
                # shellcheck disable=SC2154
                wait "$p_a" && wait "$p_b" && wait "$p_c"
                pub_rc=$?
                finish_ex
                check "epoll-sub: 900 messages from 3 producers at once, 300 per topic" \
                        "$dir/ep2.err $dir/pub-a.log $dir/pub-b.log $dir/pub-c.log" \
                        eval '[ "$pub_rc" -eq 0 ] && [ "$ex_rc" -eq 0 ] &&
                              [ "$(grep -c "^ep2.a: a\$" "$dir/ep2.out")" -eq 300 ] &&
                              [ "$(grep -c "^ep2.b: b\$" "$dir/ep2.out")" -eq 300 ] &&
                              [ "$(grep -c "^ep2.c: c\$" "$dir/ep2.out")" -eq 300 ]'
        else
                not_ok "epoll-sub subscribes (second run)" "$dir/ep2.err"
        fi

        # The second topic's message goes out once the first one is
        # printed: a wait set takes its members in turn from the first, so
        # two messages that are both there at one wake come out as ep3.a,
        # ep3.b, whatever order they were published in.
        mkfifo "$dir/ep3.out" && exec 5<>"$dir/ep3.out"
        if start_ex ep3 epoll-sub ep3.a ep3.b; then
                cli pub ep3.b one >"$dir/pub.log" 2>&1 && read_lines 5 1 >"$dir/ep3.lines" &&
                        cli pub ep3.a two >>"$dir/pub.log" 2>&1
                pub_rc=$?
                read_lines 5 1 >>"$dir/ep3.lines"
                kill -TERM "$ex_pid"
                finish_ex
                check "epoll-sub: SIGTERM (through its signalfd) ends the loop (exit 0) after what it printed" \
                        "$dir/ep3.err $dir/pub.log" \
                        eval '[ "$pub_rc" -eq 0 ] && [ "$ex_rc" -eq 0 ] && expect "$dir/ep3.lines" "ep3.b: one\nep3.a: two\n" &&
                              grep -q "2 messages" "$dir/ep3.err"'
        else
                not_ok "epoll-sub subscribes (third run)" "$dir/ep3.err"
        fi
        exec 5<&-
        ;;
esac

finish
