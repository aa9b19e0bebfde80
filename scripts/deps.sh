#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install what building and testing zcbus needs on Debian, only if missing.
# Usage: scripts/deps.sh [bench|fuzz]   ("bench" adds gnuplot,
# "fuzz" clang and its sanitizer/libFuzzer runtime)
set -euo pipefail
# libglib2.0-dev: only for examples/glib-sub.c (tests/test_examples.sh skips it without)
pkgs=(build-essential autoconf automake libtool pkg-config uuid-dev libev-dev libglib2.0-dev check python3 spin mandoc
      nats-server libnats-dev)
[ "${1:-}" = bench ] && pkgs+=(gnuplot-nox)
[ "${1:-}" = fuzz ] && pkgs+=(clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
