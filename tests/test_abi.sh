#!/bin/sh
# SPDX-License-Identifier: MIT
# test_abi.sh: what libzcbus shows the programs that link it.
#  - libzcbus.so exports exactly the zcbus_* calls that include/zcbus.h
#    declares, and nothing of the broker's (its repair code is not in it);
#  - libzcbus.a defines no global but zcbus_*, so a static link does not
#    clash with an application's own now_ns, seg_create or sock_send;
#  - zcbus.h compiles as strict C11, C99 -pedantic and C++17.
# Run by make check with ZCBUS_BUILDDIR and ZCBUS_SRCDIR set.
set -u
b=${ZCBUS_BUILDDIR:?} s=${ZCBUS_SRCDIR:?}
so=$b/.libs/libzcbus.so a=$b/.libs/libzcbus.a
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() {
        name=$1; shift
        if "$@" >"$tmp/out" 2>&1; then
                pass=$((pass + 1)); echo "ok: $name"
        else
                fail=$((fail + 1)); echo "FAIL: $name"; sed 's/^/  | /' "$tmp/out" | head -20
        fi
}
empty() { [ ! -s "$1" ] || { cat "$1"; return 1; }; }

# The calls the header declares, and what the libraries define.
grep -o '\bzcbus_[a-z_]*[[:space:]]*(' "$s/include/zcbus.h" | tr -d '( \t' | sort -u >"$tmp/header"
nm -D --defined-only "$so" | awk '$3 != "" && $2 ~ /^[B-Z]$/ { sub(/@.*/, "", $3); print $3 }' | sort -u >"$tmp/so"
nm -g --defined-only "$a" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/a"

check "the header declares calls (sanity)" test "$(wc -l <"$tmp/header")" -ge 20
check "libzcbus.so exports exactly the header's calls" diff -u "$tmp/header" "$tmp/so"
check "libzcbus.a defines exactly the header's calls as globals" diff -u "$tmp/header" "$tmp/a"
# Broker-only: every call ring_repair.h declares.
grep -o '\bring_[a-z_]*(' "$s/libbus/ring_repair.h" | tr -d '(' | sort -u >"$tmp/broker_calls"
check "ring_repair.h declares the broker's calls (sanity)" test "$(wc -l <"$tmp/broker_calls")" -ge 6
nm "$so" | awk '{ print $NF }' | sort -u | comm -12 - "$tmp/broker_calls" >"$tmp/broker"
check "no broker-only code in libzcbus.so" empty "$tmp/broker"

# No include cycle between libbus modules (each module sees only those
# below it: layout under seg, wait under ring, ...).
cat >"$tmp/cycles.py" <<'PY'
import os, re, sys
d = sys.argv[1]
# A module is a .c and its .h; it depends on every libbus header either includes.
files = [f for f in os.listdir(d) if f.endswith(('.c', '.h'))]
hdrs = {f for f in files if f.endswith('.h')}
dep = {}
for f in files:
    m = f.rsplit('.', 1)[0]
    for h in re.findall(r'#include "([^"]+)"', open(os.path.join(d, f)).read()):
        if h in hdrs and h.rsplit('.', 1)[0] != m:
            dep.setdefault(m, set()).add(h.rsplit('.', 1)[0])
state = {}
def visit(m, path):
    if state.get(m) == 1:
        print('cycle: ' + ' -> '.join(path + [m])); sys.exit(1)
    if state.get(m) == 2:
        return
    state[m] = 1
    for n in sorted(dep.get(m, ())):
        visit(n, path + [m])
    state[m] = 2
for m in sorted(dep):
    visit(m, [])
PY
check "no include cycle between libbus modules (a .c and its .h)" python3 "$tmp/cycles.py" "$s/libbus"

# An application with its own names for what libzcbus has inside.
cat >"$tmp/app.c" <<'C'
#include <stdio.h>
#include <zcbus.h>
unsigned long long now_ns(void) { return 42; }
int seg_create(void) { return 7; }
int sock_send(void) { return 9; }
int proto_decode(void) { return 11; }
int main(void) {
        zcbus *bus = NULL;
        /* Connecting pulls in every module of the library. */
        int r = zcbus_connect("/nonexistent/zcbus-abi.sock", &bus);
        return !(r < 0 && bus == NULL && now_ns() == 42 && seg_create() == 7 && sock_send() == 9 &&
                 proto_decode() == 11 && zcbus_strerror(r) != NULL);
}
C
check "a static link beside clashing names builds" \
        ${ABI_CC:-cc} -I"$s/include" -o "$tmp/app" "$tmp/app.c" "$a" -luuid -pthread
check "and runs with the application's own definitions" "$tmp/app"

printf '#include <zcbus.h>\nstatic zcbus_msg m;\nint main(void) { return (int)m.len + (zcbus_strerror(0) == 0); }\n' >"$tmp/h.c"
cp "$tmp/h.c" "$tmp/h.cpp"
check "zcbus.h compiles as strict C11" ${ABI_CC:-cc} -std=c11 -pedantic-errors -Wall -Wextra -Werror -I"$s/include" -c "$tmp/h.c" -o "$tmp/h11.o"
check "zcbus.h compiles as C99 -pedantic" ${ABI_CC:-cc} -std=c99 -pedantic-errors -Wall -Wextra -Werror -I"$s/include" -c "$tmp/h.c" -o "$tmp/h99.o"
check "zcbus.h compiles as C++17" ${CXX:-c++} -std=c++17 -pedantic-errors -Wall -Wextra -Werror -I"$s/include" -c "$tmp/h.cpp" -o "$tmp/hxx.o"

echo "test_abi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
