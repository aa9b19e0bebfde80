#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The arm64 build: cross-compiles the whole tree with Debian's
# gcc-aarch64-linux-gnu (-Werror) in build/arm64, then runs the proto, seg
# and ring suites under qemu-user. A portability check (word sizes,
# alignment, syscall numbers, the aarch64 branches of atomics.h). qemu runs
# the guest on the host's memory ordering, never weaker than x86's, so weak
# ordering is the model's job, not this run's.
#
# Installs what is missing, once: the cross compiler, qemu-user, and the
# arm64 libraries the build links (Debian multiarch: check, uuid, libev).
#
# qemu is run with -L /: the multiarch libc6:arm64 in /lib/aarch64-linux-gnu
# is the one the dynamic loader finds. With -L /usr/aarch64-linux-gnu the
# cross toolchain's ld.so (libc6-arm64-cross) would be paired with that
# libc.so.6 (libc6:arm64, a newer Debian revision), and every forked Check
# child hangs.
#
# qemu is pinned to one host CPU. qemu 7.2 translates STLR with its fence
# before the store and LDAR with its fence after the load, so on an x86
# host an STLR followed by an LDAR can be reordered (store buffering),
# which ARMv8 forbids and C11's seq_cst store/load (gcc: stlr; ldar)
# relies on: zcbus's Dekker pairs (docs/design.md, "Ordering points": C,
# H/I) then fail under the emulator, not on arm64 (the LATEST torn-read
# test fails about 4 runs in 10). On one host CPU the emulated threads are
# sequentially consistent. (libtool's warning about "cross tools not
# prefixed" is its check for file(1): harmless.)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
scripts/deps.sh

sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
apt_install() {
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -o DPkg::Lock::Timeout=600 -y -qq "$@" >/dev/null
}
pkgs=(gcc-aarch64-linux-gnu qemu-user libc6-dev:arm64 check:arm64 uuid-dev:arm64 libev-dev:arm64)
missing=()
for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -ne 0 ]; then
        echo "arm64: installing ${missing[*]}"
        dpkg --print-foreign-architectures | grep -qx arm64 || $sudo dpkg --add-architecture arm64
        $sudo apt-get update -qq -o DPkg::Lock::Timeout=600
        apt_install "${missing[@]}"
fi

# Debian has no aarch64-linux-gnu-pkg-config: the host's, pointed at the
# arm64 .pc files only.
pc=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
scripts/build.sh build/arm64 --host=aarch64-linux-gnu --enable-werror \
        PKG_CONFIG=pkg-config PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR="$pc"
suites=(test_proto test_seg test_ring test_ring_repair test_ring_latest)
make -C build/arm64 -s "${suites[@]/#/tests/}"

cpu=$(taskset -pc $$ | sed 's/.*: //; s/[-,].*//')
passed=0 failed=0 skipped=0 checks=0
for t in "${suites[@]}"; do
        bin=build/arm64/tests/$t log=build/arm64/tests/$t.arm64.log
        aarch64-linux-gnu-readelf -h "$bin" | grep -q 'Machine:.*AArch64' || {
                echo "arm64: $bin is not an AArch64 program" >&2
                exit 1
        }
        rc=0
        # Check's own timeouts count guest time; this one catches a hung qemu.
        ZCBUS_TEST_SCALE=${ZCBUS_TEST_SCALE:-1} timeout -k 10 600 \
                taskset -c "$cpu" qemu-aarch64 -L / "$bin" >"$log" 2>&1 || rc=$?
        summary=$(grep -E '^[0-9]+%: Checks:' "$log" | tail -1 || true)
        case $rc in
        0)
                passed=$((passed + 1))
                checks=$((checks + $(echo "$summary" | sed -E 's/.*Checks: ([0-9]+).*/\1/')))
                echo "arm64: $t: $summary"
                ;;
        77)
                skipped=$((skipped + 1))
                echo "arm64: $t: skipped: $(tail -1 "$log")"
                ;;
        *)
                failed=$((failed + 1))
                echo "arm64: $t FAILED (exit $rc${summary:+, $summary}); its log:" >&2
                sed 's/^/    /' "$log" >&2
                ;;
        esac
done
echo "arm64: $checks checks in $passed suites under $(qemu-aarch64 --version | head -1), on CPU $cpu"
line="arm64: $passed passed, $failed failed"
[ "$skipped" -eq 0 ] || line+=", $skipped skipped"
echo "$line"
[ "$failed" -eq 0 ]
