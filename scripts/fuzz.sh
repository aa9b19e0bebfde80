#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fuzz the control-protocol decoder with libFuzzer: scripts/fuzz.sh [SECONDS]
# (default 60). Installs clang and its runtime if missing. A crash leaves
# its input in build/fuzz/ and fails the script.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
cd "$top"
scripts/deps.sh fuzz
[ -f build/plain/config.h ] || scripts/build.sh build/plain --enable-werror
mkdir -p build/fuzz/corpus
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -Ibuild/plain -Ilibbus -Iinclude \
        tests/fuzz_proto.c libbus/proto.c -o build/fuzz/fuzz_proto
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -Ibuild/plain -Ibridge \
        tests/fuzz_batch.c bridge/batch.c -o build/fuzz/fuzz_batch
mkdir -p build/fuzz/corpus-batch
cd build/fuzz
./fuzz_proto -max_total_time="$secs" -max_len=4096 -print_final_stats=1 corpus 2>&1 | tail -n 12
# The bridge's batch records: a third of the time (a smaller decoder).
./fuzz_batch -max_total_time="$(((secs + 2) / 3))" -max_len=4096 -print_final_stats=1 corpus-batch 2>&1 | tail -n 12
