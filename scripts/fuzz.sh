#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_<name>.cpp: every parser of untrusted input) with
# clang, ASan and UBSan, then runs each for SECONDS (default 20) from a seed corpus. Exits non-zero
# when a target crashes (the crashing input is left in the build directory's fuzz-crashes/).
# Usage: scripts/fuzz.sh [SECONDS]    env: FUZZ_BUILD (default build-fuzz), FUZZ_ONLY="a b" (a subset)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-20}"
BUILD="${FUZZ_BUILD:-build-fuzz}"
# The targets, in the order they run. Seeds: tests/fuzz/seeds/<name>/ when it exists, plus what
# seed_<name> (below) writes.
TARGETS=(pack safetensors config tokenizer_json tokenizer_text npy trace verify openai_request jinja grammar)
[ -n "${FUZZ_ONLY:-}" ] && read -r -a TARGETS <<<"$FUZZ_ONLY"
if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found; install clang and libclang-rt-14-dev (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi
FLAGS="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -g"
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOE_CUDA=OFF -DMOE_FUZZ=ON \
  -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS" >/dev/null
cmake --build "$BUILD" --target $(printf 'fuzz_%s ' "${TARGETS[@]}") fuzz_pack_seeds

# seed_<name> DIR: generated seeds of a target.
seed_safetensors() { for f in tests/fixtures/*/*.safetensors; do cp "$f" "$1/$(basename "$(dirname "$f")")-$(basename "$f")"; done; }
seed_tokenizer_json() { for f in tests/fixtures/*/tokenizer.json; do cp "$f" "$1/$(basename "$(dirname "$f")").json"; done; }
seed_pack() { "$BUILD/tests/fuzz/fuzz_pack_seeds" "$1"; }
seed_verify() { seed_pack "$1"; }
seed_npy() { for f in tests/fixtures/*/golden/*.npy; do cp "$f" "$1/$(basename "$(dirname "$(dirname "$f")")")-$(basename "$f")"; done; }
seed_trace() { cp tests/data/trace_small.jsonl models/tiny-moe/trace/decode-chat.jsonl "$1/"; }

SEEDS="$BUILD/fuzz-seeds"
rm -rf "$SEEDS"
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "$SEEDS/$t"
  [ -d "tests/fuzz/seeds/$t" ] && cp -r "tests/fuzz/seeds/$t/." "$SEEDS/$t/"
  if declare -F "seed_$t" >/dev/null; then "seed_$t" "$SEEDS/$t"; fi
  work="$BUILD/fuzz-corpus/$t"  # grows across runs; the seeds stay untouched
  mkdir -p "$work" "$BUILD/fuzz-crashes/$t"
  echo "fuzz.sh: fuzz_$t for ${SECS}s"
  if ! "$BUILD/tests/fuzz/fuzz_$t" -max_total_time="$SECS" -max_len=2000000 -timeout=20 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$BUILD/fuzz-crashes/$t/" "$work" "$SEEDS/$t" >"$BUILD/fuzz-$t.log" 2>&1; then
    echo "fuzz.sh: fuzz_$t CRASHED; input and log: $BUILD/fuzz-crashes/$t/, $BUILD/fuzz-$t.log" >&2
    tail -40 "$BUILD/fuzz-$t.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$BUILD/fuzz-$t.log" | sed "s/^/fuzz.sh: fuzz_$t /"
  fi
done
exit $status
