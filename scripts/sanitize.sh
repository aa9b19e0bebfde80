#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Sanitizer runs: scripts/sanitize.sh asan|tsan
#  asan: the whole make check under AddressSanitizer + UndefinedBehaviorSanitizer,
#        with the test-only kill points compiled in (suite "trust" then kills
#        peers at every point of the data plane)
#  tsan: the ring suites (threads standing in for processes) under ThreadSanitizer
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
case "${1:-}" in
asan)
        flags="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
        scripts/build.sh build/asan --enable-werror --enable-kill-points CFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined"
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        make -C build/asan -s check || { cat build/asan/test-suite.log; exit 1; }
        ;;
tsan)
        flags="-O1 -g -fsanitize=thread"
        scripts/build.sh build/tsan --enable-werror CFLAGS="$flags" LDFLAGS="-fsanitize=thread"
        suites="test_ring test_ring_repair test_ring_latest"
        for t in $suites; do make -C build/tsan -s "tests/$t"; done
        # TSan needs the real mappings it expects: no ASLR games here.
        for t in $suites; do
                TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ZCBUS_TEST_SCALE=${ZCBUS_TEST_SCALE:-1} \
                        setarch "$(uname -m)" -R "build/tsan/tests/$t"
        done
        ;;
*)
        echo "usage: $0 asan|tsan" >&2
        exit 2
        ;;
esac
