#!/usr/bin/env bash
# Builds the libFuzzer targets (pack metadata parser, safetensors parser) with clang, ASan and
# UBSan in build-fuzz/, then runs each for SECONDS (default 20) from a seed corpus made of the
# fixtures. Exits non-zero when a target crashes (the crashing input is left in build-fuzz/).
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-20}"
BUILD=build-fuzz
if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found; install clang and libclang-rt-14-dev (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi
FLAGS="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -g"
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOE_CUDA=OFF -DMOE_FUZZ=ON \
  -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS" >/dev/null
cmake --build "$BUILD" --target fuzz_pack fuzz_safetensors fuzz_pack_seeds

# Seeds: the fixtures' safetensors files, and small packs of every record kind.
SEEDS="$BUILD/fuzz-seeds"
rm -rf "$SEEDS"
mkdir -p "$SEEDS/safetensors" "$SEEDS/pack"
for f in tests/fixtures/*/*.safetensors; do cp "$f" "$SEEDS/safetensors/$(basename "$(dirname "$f")")-$(basename "$f")"; done
"$BUILD/tests/fuzz/fuzz_pack_seeds" "$SEEDS/pack"

status=0
for t in pack safetensors; do
  work="$BUILD/fuzz-corpus/$t"  # grows across runs; the seeds stay untouched
  mkdir -p "$work" "$BUILD/fuzz-crashes/$t"
  echo "fuzz.sh: fuzz_$t for ${SECS}s"
  if ! "$BUILD/tests/fuzz/fuzz_$t" -max_total_time="$SECS" -max_len=2000000 -timeout=20 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$BUILD/fuzz-crashes/$t/" "$work" "$SEEDS/$t" >"$BUILD/fuzz-$t.log" 2>&1; then
    echo "fuzz.sh: fuzz_$t CRASHED; input and log: $BUILD/fuzz-crashes/$t/, $BUILD/fuzz-$t.log" >&2
    tail -40 "$BUILD/fuzz-$t.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_runs|stat::new_units_added" "$BUILD/fuzz-$t.log" | sed "s/^/fuzz.sh: fuzz_$t /"
  fi
done
exit $status
