#!/bin/sh
# SPDX-License-Identifier: MIT
# test_daemon.sh: zcbusd under a service manager, without one. Run by
# `make check` with ZCBUSD, ZCBUS_CLI and ZCBUS_DAEMON_HELPER set; exits 77
# (skip) without them.
#
# tests/daemon_helper plays systemd: it binds and listens on the socket
# and execs the broker with it as descriptor 3 (LISTEN_FDS, LISTEN_PID),
# and it listens on a notify socket, printing each datagram as a line on a
# fifo that the checks read. It covers socket activation (a real client
# connects through the passed socket; wrong sockets are refused), the
# notify datagrams (READY=1, STATUS=, RELOADING=1, STOPPING=1, MAINPID=),
# the pidfile (written, refused while held, stale ones taken over,
# removed at exit), SIGHUP's per-setting report, the <N> log prefixes on
# the journal, and the generated unit files.
#
# Nothing sleeps to wait for anything: brokers report readiness on the
# notify socket, --ready-fd or by their parent's exit, and a daemon's exit
# is waited for with a pidfd. The notify listener exits after $T seconds of
# silence, so a datagram that never comes fails a check instead of
# hanging the suite.

# The checks are strings eval'd by check(), hence SC2016/SC2034/SC2317;
# the journal file is stat'ed, not read, by the command it is written by (SC2094).
# shellcheck disable=SC2016,SC2034,SC2094,SC2317

set -u
# ok, not_ok, finish and the signal traps
. "$(dirname "$0")/tap.sh"

if [ -z "${ZCBUSD:-}" ] || [ -z "${ZCBUS_CLI:-}" ] || [ -z "${ZCBUS_DAEMON_HELPER:-}" ]; then
        echo "SKIP: ZCBUSD, ZCBUS_CLI and ZCBUS_DAEMON_HELPER must name the built programs"
        exit 77
fi
H=$ZCBUS_DAEMON_HELPER
T=$((10 * ${ZCBUS_TEST_SCALE:-1}))

dir=$(mktemp -d "${TMPDIR:-/tmp}/zcbus-daemon.XXXXXX") || exit 99
broker_pid=
listener_pid=
dpid=

daemon_pid() {
        [ -s "$dir/zcbusd.pid" ] && cat "$dir/zcbusd.pid"
}

cleanup() {
        exec 4<&- 2>/dev/null
        d=$(daemon_pid)
        for p in $broker_pid $listener_pid $dpid $d; do
                kill -KILL "$p" 2>/dev/null
        done
        for p in $broker_pid $listener_pid; do
                wait "$p" 2>/dev/null
        done
        rm -rf "$dir"
}
trap cleanup EXIT

# check DESCRIPTION CONDITION...: on failure the broker's log, the notify
# datagrams and the last command's output are shown.
check() {
        desc=$1
        shift
        if "$@"; then
                ok "$desc"
        else
                not_ok "$desc" "$dir/broker.log" "$dir/notify.log" "$dir/last.out" "$dir/last.err"
        fi
}

run() {
        "$@" </dev/null >"$dir/last.out" 2>"$dir/last.err"
        rc=$?
}

lines() {
        echo $(($(wc -l <"$1")))
}

# ---- the notify listener ------------------------------------------------------

# notify_start ADDR: a listener on ADDR whose datagrams are read from fd 4.
notify_start() {
        rm -f "$dir/notify.fifo"
        : >"$dir/notify.log"
        mkfifo "$dir/notify.fifo" || exit 99
        "$H" notify "$1" "$T" >"$dir/notify.fifo" 2>"$dir/notify.err" &
        listener_pid=$!
        exec 4<"$dir/notify.fifo"
        line=
        read -r line <&4
        [ "$line" = LISTENING ] || {
                cat "$dir/notify.err"
                exit 99
        }
}

notify_stop() {
        exec 4<&-
        kill -TERM "$listener_pid" 2>/dev/null
        wait "$listener_pid" 2>/dev/null
        listener_pid=
}

# notify_expect PATTERN: read datagrams until one matches the shell
# pattern PATTERN (newlines in a datagram are ';'); false at the
# listener's end. The datagram is in $datagram.
notify_expect() {
        while read -r datagram <&4; do
                echo "$datagram" >>"$dir/notify.log"
                # shellcheck disable=SC2254
                case "$datagram" in
                $1) return 0 ;;
                esac
        done
        echo "(no datagram matching '$1')" >>"$dir/notify.log"
        return 1
}

# stop_broker SIGNAL: signal the foreground broker and reap it; $broker_rc.
stop_broker() {
        kill "-$1" "$broker_pid"
        wait "$broker_pid"
        broker_rc=$?
        broker_pid=
}

# ---- socket activation, notify datagrams -------------------------------------

sock=$dir/bus.sock
notify_start "@zcbus-test-notify-$$"
# A JOURNAL_STREAM that is not our stderr: no <N> prefixes.
NOTIFY_SOCKET="@zcbus-test-notify-$$" JOURNAL_STREAM=1:1 \
        "$H" activate "$sock" -- "$ZCBUSD" -f -v >"$dir/broker.log" 2>&1 </dev/null &
broker_pid=$!
check "activated: STATUS= with no topic and no session before READY=1" \
        notify_expect 'STATUS=0 topics, 0 sessions'
check "activated: READY=1, with no MAINPID (it did not fork)" notify_expect 'READY=1'
check "activated: the datagram is READY=1 alone" eval '[ "$datagram" = READY=1 ]'
check "activated: the broker says it listens on the passed socket" \
        grep -q "listening on '$sock', the socket the service manager passed" "$dir/broker.log"
run "$ZCBUS_CLI" -s "$sock" pub act.t a b c
check "activated: a real client publishes through the passed socket" eval '[ "$rc" -eq 0 ]'
run "$ZCBUS_CLI" -s "$sock" list
check "activated: and lists the topic it made" eval '[ "$rc" -eq 0 ] && grep -q "act.t" "$dir/last.out"'
check "activated: STATUS= follows the topic count" notify_expect 'STATUS=1 topic, * session*'
kill -HUP "$broker_pid"
check "SIGHUP: RELOADING=1 with MONOTONIC_USEC=" notify_expect 'RELOADING=1;MONOTONIC_USEC=[0-9]*'
check "SIGHUP: READY=1 after the reload" notify_expect 'READY=1'
kill -TERM "$broker_pid"
check "SIGTERM: STOPPING=1" notify_expect 'STOPPING=1*'
wait "$broker_pid"
broker_rc=$?
broker_pid=
check "activated: exits 0 at SIGTERM" eval '[ "$broker_rc" -eq 0 ]'
check "activated: leaves the manager's socket file alone" test -S "$sock"
check "a JOURNAL_STREAM that is not stderr: lines keep 'zcbusd: ', no <N>" \
        eval 'grep -q "^zcbusd: listening" "$dir/broker.log" && ! grep -q "^<[0-9]>" "$dir/broker.log"'
notify_stop
rm -f "$sock"

# As below, timeout is only a net against a broker that wrongly serves.
run timeout -s KILL "$T" "$H" activate --type stream "$sock" -- "$ZCBUSD" -f
check "activation with a SOCK_STREAM socket: exit 1, one line naming the type" \
        eval '[ "$rc" -eq 1 ] && [ "$(lines "$dir/last.err")" -eq 1 ] && grep -q "SOCK_STREAM.*not SOCK_SEQPACKET" "$dir/last.err"'
rm -f "$sock"
run timeout -s KILL "$T" "$H" activate --no-listen "$sock" -- "$ZCBUSD" -f
check "activation with a socket that does not listen: exit 1, says so" \
        eval '[ "$rc" -eq 1 ] && grep -q "not a listening socket" "$dir/last.err"'
rm -f "$sock"

# LISTEN_PID names another process: the descriptors are not ours, so the
# broker binds its own path (it would refuse: the helper's socket
# answers on $sock, if it took fd 3 for its own).
mkfifo "$dir/ready" || exit 99
"$H" activate --not-mine "$sock" -- "$ZCBUSD" -f -s "$dir/own.sock" --ready-fd 5 5>"$dir/ready" \
        >"$dir/broker.log" 2>&1 </dev/null &
broker_pid=$!
ready=
read -r ready <"$dir/ready"
check "LISTEN_PID of another process: the broker binds its own socket" \
        eval '[ "$ready" = READY ] && [ -S "$dir/own.sock" ] && ! grep -q "service manager" "$dir/broker.log"'
run "$ZCBUS_CLI" -s "$dir/own.sock" list
check "LISTEN_PID of another process: clients reach it on its own path" eval '[ "$rc" -eq 0 ]'
stop_broker TERM
check "LISTEN_PID of another process: it removes its own socket at exit" \
        eval '[ "$broker_rc" -eq 0 ] && [ ! -e "$dir/own.sock" ]'
rm -f "$sock" "$dir/ready"

# ---- SIGHUP per setting, <N> prefixes on the journal --------------------------

conf=$dir/zcbusd.conf
printf 'verbose = 0\nmax_topics = 1024\n' >"$conf"
: >"$dir/broker.log"
js=$(stat -c '%d:%i' "$dir/broker.log")
notify_start "$dir/notify.sock"
# The socket from $ZCBUS_SOCKET, not -s: -s would override the file's.
NOTIFY_SOCKET="$dir/notify.sock" JOURNAL_STREAM=$js ZCBUS_SOCKET=$sock \
        "$ZCBUSD" -f -c "$conf" 2>>"$dir/broker.log" >/dev/null </dev/null &
broker_pid=$!
check "notify on a path socket: READY=1" notify_expect 'READY=1*'
check "journal: info lines carry <6>" grep -q "^<6>listening on '$sock'" "$dir/broker.log"
run "$ZCBUS_CLI" -s "$sock" list
check "journal: no debug line while verbose is off" eval '! grep -q "HELLO from" "$dir/broker.log"'
printf 'verbose = 1\nmax_topics = 8\nsocket = %s\nsocket_mode = 0600\npidfile = %s\n' \
        "$dir/other.sock" "$dir/other.pid" >"$conf"
kill -HUP "$broker_pid"
check "SIGHUP with a changed file: RELOADING=1" notify_expect 'RELOADING=1*'
check "SIGHUP with a changed file: READY=1" notify_expect 'READY=1'
check "SIGHUP: a reloaded setting is logged with both values" \
        grep -q "^<6>received SIGHUP: max_topics 1024 -> 8\$" "$dir/broker.log"
check "SIGHUP: verbose 0 -> 1 is logged" grep -q "^<6>received SIGHUP: verbose 0 -> 1\$" "$dir/broker.log"
check "SIGHUP: socket is not applied, said at <4>" \
        grep -q "^<4>received SIGHUP: socket unset -> '$dir/other.sock' not applied: it takes a restart" "$dir/broker.log"
check "SIGHUP: socket_mode is not applied" \
        grep -q "^<4>received SIGHUP: socket_mode 0660 -> 0600 not applied" "$dir/broker.log"
check "SIGHUP: pidfile is not applied (and not made)" \
        eval 'grep -q "^<4>received SIGHUP: pidfile unset -> .$dir/other.pid. not applied" "$dir/broker.log" && [ ! -e "$dir/other.pid" ]'
check "SIGHUP: an unchanged setting is not mentioned" eval '! grep -q "SIGHUP: slot_count" "$dir/broker.log"'
run "$ZCBUS_CLI" -s "$sock" list
check "SIGHUP applied verbose: debug lines now, at <7>" grep -q "^<7>session .*HELLO from" "$dir/broker.log"
check "SIGHUP: the socket stays where it was" eval '[ "$rc" -eq 0 ] && [ ! -e "$dir/other.sock" ]'
stop_broker TERM
check "SIGTERM: STOPPING=1 on the path socket" notify_expect 'STOPPING=1*'
check "journal: every line has a priority prefix" eval '! grep -qv "^<[0-7]>" "$dir/broker.log"'
notify_stop

# ---- pidfile ------------------------------------------------------------------

pidf=$dir/zcbusd.pid
notify_start "@zcbus-test-notify2-$$"
run env NOTIFY_SOCKET="@zcbus-test-notify2-$$" "$ZCBUSD" -s "$sock" --pidfile "$pidf"
check "daemon with --pidfile: the parent exits 0 once it listens" eval '[ "$rc" -eq 0 ] && [ -S "$sock" ]'
dpid=$(daemon_pid)
check "daemon with --pidfile: the file names the live daemon as soon as the parent returns" \
        eval '[ -n "$dpid" ] && kill -0 "$dpid" && [ "$(cat /proc/$dpid/comm)" = zcbusd ]'
check "daemon: READY=1 with MAINPID= of the daemon" notify_expect "READY=1;MAINPID=$dpid"
# A broker that wrongly starts would serve for ever: timeout is only a net.
run timeout -s KILL "$T" "$ZCBUSD" -f -s "$dir/second.sock" --pidfile "$pidf"
check "a second broker with the same pidfile: exit 1, names the holder" \
        eval '[ "$rc" -eq 1 ] && [ "$(lines "$dir/last.err")" -eq 1 ] && grep -q "pidfile .$pidf. is held by a running broker (pid $dpid)" "$dir/last.err"'
check "a second broker with the same pidfile: made no socket, left the file" \
        eval '[ ! -e "$dir/second.sock" ] && [ "$(daemon_pid)" = "$dpid" ]'
: >"$dir/j2.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$dir/j2.log") timeout -s KILL "$T" "$ZCBUSD" -f -s "$dir/second.sock" --pidfile "$pidf" \
        2>>"$dir/j2.log" </dev/null >/dev/null
check "journal: an error carries <3>" grep -q "^<3>pidfile .* is held by a running broker" "$dir/j2.log"
kill -HUP "$(cat "$pidf")"
check "the man page's reload (kill -HUP \$(cat pidfile)) reaches that broker" notify_expect 'RELOADING=1*'
kill -TERM "$(cat "$pidf")"
check "daemon: STOPPING=1" notify_expect 'STOPPING=1*'
run "$H" waitpid "$dpid" $((T * 1000))
[ "$rc" -eq 77 ] && echo "# no pidfd_open: not waiting for the daemon's exit"
check "daemon: exits at SIGTERM" eval '[ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]'
check "daemon: pidfile and socket are removed at exit" eval '[ "$rc" -ne 0 ] || { [ ! -e "$pidf" ] && [ ! -e "$sock" ]; }'
notify_stop

echo 99999999 >"$pidf" # what a broker killed with SIGKILL leaves: nobody holds its lock
mkfifo "$dir/ready" || exit 99
"$ZCBUSD" -f -s "$sock" --pidfile "$pidf" --ready-fd 5 5>"$dir/ready" >"$dir/broker.log" 2>&1 </dev/null &
broker_pid=$!
ready=
read -r ready <"$dir/ready"
check "a stale pidfile is taken over and names the new broker at readiness" \
        eval '[ "$ready" = READY ] && [ "$(daemon_pid)" = "$broker_pid" ]'
check "a stale pidfile: the broker says so" grep -q "taking over stale pidfile '$pidf' (pid 99999999" "$dir/broker.log"
stop_broker TERM
check "the pidfile goes at exit" eval '[ "$broker_rc" -eq 0 ] && [ ! -e "$pidf" ]'
rm -f "$dir/ready"

# A daemon takes the passed socket before it forks (LISTEN_PID names the
# process the manager started, which becomes the daemon's parent).
rm -f "$sock"
run "$H" activate "$sock" -- "$ZCBUSD" --pidfile "$pidf"
dpid=$(daemon_pid)
check "activated daemon: the parent exits 0, the daemon holds the pidfile" \
        eval '[ "$rc" -eq 0 ] && [ -n "$dpid" ] && kill -0 "$dpid"'
run "$ZCBUS_CLI" -s "$sock" list
check "activated daemon: serves the socket it took before forking" eval '[ "$rc" -eq 0 ]'
kill -TERM "$dpid"
run "$H" waitpid "$dpid" $((T * 1000))
check "activated daemon: exits at SIGTERM, removes its pidfile, leaves the manager's socket" \
        eval '[ "$rc" -eq 77 ] || { [ "$rc" -eq 0 ] && [ ! -e "$pidf" ] && [ -S "$sock" ]; }'
rm -f "$sock"

# ---- the unit files --------------------------------------------------------------

units=${ZCBUS_BUILDDIR:-.}/systemd
svc=$units/zcbusd.service
skt=$units/zcbusd.socket
check "zcbusd.service: Type=notify, reload by SIGHUP to \$MAINPID" \
        eval 'grep -q "^Type=notify\$" "$svc" && grep -q "^ExecReload=/bin/kill -HUP \$MAINPID\$" "$svc"'
check "zcbusd.service: ExecStart is the configured zcbusd, in the foreground" \
        eval 'grep -q "^ExecStart=/.*/zcbusd -f -c /.*/zcbusd.conf\$" "$svc" && ! grep -q "@[a-z]*@" "$svc" "$skt"'
check "zcbusd.socket: a SOCK_SEQPACKET socket at the root broker's default path, mode 0660" \
        eval 'grep -q "^ListenSequentialPacket=/run/zcbus.sock\$" "$skt" && grep -q "^SocketMode=0660\$" "$skt"'
if command -v systemd-analyze >/dev/null 2>&1; then
        # The real unit, but for the binary and config under test.
        mkdir -p "$dir/units"
        sed -e "s|^ExecStart=.*|ExecStart=$ZCBUSD -f -c $conf|" "$svc" >"$dir/units/zcbusd.service"
        cp "$skt" "$dir/units/zcbusd.socket"
        run systemd-analyze verify --man=no "$dir/units/zcbusd.socket" "$dir/units/zcbusd.service"
        check "systemd-analyze verify accepts both units" eval '[ "$rc" -eq 0 ] && [ ! -s "$dir/last.err" ]'
else
        echo "# systemd-analyze not found: unit syntax not verified"
fi

finish
