#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The one test command: installs what is missing, builds zcbus with
# -Werror, runs the whole suite, then runs it again under ASan+UBSan, then
# the ring tests under ThreadSanitizer, the arm64 cross build with its
# unit suites under qemu-user, a short stress run, a short chaos soak
# (random kill -9 of producers and subscribers) and a short libFuzzer run
# of the protocol decoder.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/deps.sh

echo "== build and test (-Werror)"
scripts/build.sh build/plain --enable-werror
make -C build/plain -s check || { cat build/plain/test-suite.log; exit 1; }
grep -h '^# [A-Z]' build/plain/test-suite.log || true

echo "== ASan + UBSan"
scripts/sanitize.sh asan

echo "== ThreadSanitizer (ring)"
scripts/sanitize.sh tsan

echo "== arm64 (cross build, ring, seg and proto suites under qemu-user)"
scripts/arm64.sh

echo "== stress (short)"
scripts/stress.sh "${ZCBUS_STRESS_SECONDS:-20}"

echo "== chaos soak (short): producers and subscribers killed at random"
scripts/soak.sh "${ZCBUS_SOAK_SECONDS:-20}"

echo "== fuzz the protocol decoder and the bridge's batch records (short)"
scripts/fuzz.sh "${ZCBUS_FUZZ_SECONDS:-15}"

# One closing line for whoever reads the log: every suite of both make
# check runs, the three TSan ring suites, the five arm64 suites, the
# stress run and the soak (any failure above has already stopped this
# script). The fuzz run counts as one.
suites=$(awk '/^# PASS:/ { n += $3 } END { print n + 0 }' build/plain/test-suite.log build/asan/test-suite.log)
echo "check.sh: $((suites + 3 + 5 + 3)) passed, 0 failed"
