#!/usr/bin/env bash
# The GPU engine's decode speed on a synthetic Qwen3-30B-A3B INT4 pack (random weights, the real
# model's shapes), written to this machine's local disk by `moe synth`: VRAM budgets 100%, 50%
# and 25% of the expert bytes (experts that miss come from RAM over PCIe), prefetch off and gate;
# each with the measured PCIe host->device bandwidth and the decode rate it allows at the measured
# copy traffic. Run by scripts/gpu-check.sh (or alone, from the repository root, with build-gpu/).
#
#   scripts/gpu-engine-bench.sh            # MOE_GPU_PACK=/tmp/moe-gpu-check-q30.moepack (18 GB)
# Writes engine.json/.err into $OUT (or a temp folder) and prints the table last.
set -uo pipefail
cd "$(dirname "$0")/.."
moe="${BUILD_DIR:-build-gpu}/tools/moe"
out="${OUT:-$(mktemp -d)}"
pack="${MOE_GPU_PACK:-/tmp/moe-gpu-check-q30.moepack}"
gen="${GEN_LEN:-32}"
[[ -x "$moe" ]] || { echo "gpu-engine-bench: $moe missing (scripts/gpu-build.sh, then carry gpu-bundle.tgz)" >&2; exit 1; }

if [[ ! -f "$pack" ]]; then
  "$moe" synth --shape qwen3-30b-a3b -o "$pack" 2>&1 | tail -1 || exit 1
fi
rc=0
# One invocation compares every (budget, prefetch) pair, alternating, on one warm RAM tier:
# --warm-ram reads every expert from disk once (untimed), so misses measure the RAM -> GPU hop.
timeout "${BENCH_TIMEOUT:-300}" "$moe" bench -m "$pack" --device cuda --vram-budget 100%,50%,25% --prefetch off,gate \
  --warm-ram --prompt-len 16 --gen-len "$gen" --warmup 8 --json >"$out/engine.json" 2>"$out/engine.err"
r=$?
[[ $r == 0 ]] || { echo "gpu-engine-bench: moe bench exited $r"; tail -3 "$out/engine.err"; rc=$r; }
python3 "$(dirname "$0")/gpu_engine_table.py" "$out/engine.json" || rc=1
# The grouped expert GEMV (--grouped: one launch per projection instead of one per expert).
echo "with --grouped:"
timeout "${BENCH_TIMEOUT:-300}" "$moe" bench -m "$pack" --device cuda --vram-budget 100%,25% --prefetch off --grouped \
  --warm-ram --prompt-len 16 --gen-len "$gen" --warmup 8 --json >"$out/engine_grouped.json" 2>"$out/engine_grouped.err"
r=$?
[[ $r == 0 ]] || { echo "gpu-engine-bench: moe bench --grouped exited $r"; tail -3 "$out/engine_grouped.err"; rc=$r; }
python3 "$(dirname "$0")/gpu_engine_table.py" "$out/engine_grouped.json" || rc=1
exit $rc
