#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Configure and build zcbus out of tree: scripts/build.sh DIR [configure args...]
# Sources stay clean, so several builds (plain, sanitizers) live side by side.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$1; shift
cd "$top"
if [ -f config.status ]; then
        # An in-tree build blocks out-of-tree ones: clean it away, and say so.
        echo "build.sh: removing the in-tree build in $top (make distclean): builds go out of tree, in $dir" >&2
        make distclean >/dev/null 2>&1 || true
fi
[ -x configure ] && [ configure -nt configure.ac ] && [ configure -nt Makefile.am ] || autoreconf -fi >/dev/null 2>&1
mkdir -p "$dir"
cd "$dir"
if [ ! -f config.status ] || [ "$top/configure" -nt config.status ]; then
        "$top/configure" -q "$@"
fi
make -s -j"$(nproc)" all
