#!/usr/bin/env bash
# The GPU engine's decode speed on a synthetic Qwen3-30B-A3B INT4 pack (random weights, the real
# model's shapes), written to this machine's local disk by `moe synth`:
#   - VRAM budgets 100%, 50% and 25% of the expert bytes (misses come from RAM over PCIe),
#     prefetch off and gate, each with the measured PCIe host->device bandwidth and the decode
#     rate it allows at the measured copy traffic;
#   - --cpu-misses (the start-up-calibrated cost model picks the copy or the CPU per miss) at 50%
#     and 25%, and --cpu-misses=always (every miss on the CPU) at 25%;
#   - without CUDA graphs (--no-graphs, 100% and 25%), and with one launch per expert and
#     projection (--no-grouped, host routing, 100%), against the default (device routing, graph
#     replay of whole steps at 100%, of layer segments at partial budgets);
#   - where a decode step's device time goes, phase by phase (--gpu-phases, 100%);
#   - prefill of 512- and 4096-token prompts, fp32 GEMV against tensor cores (--prompt-tc).
# Run by scripts/gpu-check.sh (or alone, from the repository root, with build-gpu/).
#
#   scripts/gpu-engine-bench.sh            # MOE_GPU_PACK=/tmp/moe-gpu-check-q30.moepack (18 GB)
# Writes engine*.json/.err into $OUT (or a temp folder) and prints a table per run.
set -uo pipefail
cd "$(dirname "$0")/.."
moe="${BUILD_DIR:-build-gpu}/tools/moe"
out="${OUT:-$(mktemp -d)}"
pack="${MOE_GPU_PACK:-/tmp/moe-gpu-check-q30.moepack}"
gen="${GEN_LEN:-32}"
[[ -x "$moe" ]] || { echo "gpu-engine-bench: $moe missing (scripts/gpu-build.sh, then carry gpu-bundle-engine.tar.xz)" >&2; exit 1; }

if [[ ! -f "$pack" ]]; then
  "$moe" synth --shape qwen3-30b-a3b -o "$pack" 2>&1 | tail -1 || exit 1
fi
rc=0
# bench NAME FLAGS...: one `moe bench` (every --vram-budget x --prefetch pair, alternating, on one
# engine setup) into $out/NAME.json, then its table.
bench() {
  local name=$1
  shift
  echo "$name: moe bench $*"
  timeout "${BENCH_TIMEOUT:-300}" "$moe" bench -m "$pack" --device cuda --prompt-len 16 --gen-len "$gen" --warmup 8 \
    --json "$@" >"$out/$name.json" 2>"$out/$name.err"
  local r=$?
  [[ $r == 0 ]] || { echo "gpu-engine-bench: $name exited $r"; tail -3 "$out/$name.err"; rc=$r; }
  python3 "$(dirname "$0")/gpu_engine_table.py" "$out/$name.json" || rc=1
}
# --warm-ram reads every expert from disk once (untimed), so misses measure the RAM -> GPU hop.
bench engine --vram-budget 100%,50%,25% --prefetch off,gate --warm-ram
bench engine_cpu --vram-budget 50%,25% --prefetch off --cpu-misses --warm-ram
bench engine_cpu_always --vram-budget 25% --prefetch off --cpu-misses=always --warm-ram
bench engine_nographs --vram-budget 100%,25% --prefetch off --no-graphs --warm-ram
bench engine_single --vram-budget 100% --prefetch off --no-grouped

# Where a decode step's device time goes, every expert resident (--gpu-phases: events between
# the phases of eager steps, so launch gaps count and the rate is below the graphs' one above).
echo "decode phases (100% VRAM, eager): phase, device ms per step, share"
f="$out/engine_phases.json"
if timeout "${BENCH_TIMEOUT:-300}" "$moe" bench -m "$pack" --device cuda --prompt-len 16 --gen-len "$gen" --warmup 8 \
  --vram-budget 100% --prefetch off --gpu-phases --json >"$f" 2>"${f%.json}.err"; then
  python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); j = j["runs"][0] if "runs" in j else j
ph = sorted(j["gpu_phases"], key=lambda p: -p["ms_per_step"]); t = sum(p["ms_per_step"] for p in ph)
for p in ph: print("%-16s %8.3f %5.1f%%" % (p["phase"], p["ms_per_step"], 100 * p["ms_per_step"] / t))
print("%-16s %8.3f  (eager decode %.1f tok/s)" % ("all", t, j["decode_tok_s"]))' "$f" || rc=1
else
  echo "gpu-engine-bench: decode phases failed"; tail -3 "${f%.json}.err"; rc=1
fi

# Prefill, every expert resident: the fp32 grouped GEMV (passes of 8 tokens) against the
# tensor-core GEMM for prompt chunks (--prompt-tc), 512- and 4096-token prompts, one after the
# other on this machine. TFLOP/s counts the weight products (moe bench's prefill_tflop_s).
echo "prefill (100% VRAM): prompt, path, prefill tok/s, TFLOP/s of weight products"
for len in 512 4096; do
  for path in gemv tc; do
    flag=(); [[ $path == tc ]] && flag=(--prompt-tc)
    f="$out/prefill_${path}_$len.json"
    timeout "${BENCH_TIMEOUT:-300}" "$moe" bench -m "$pack" --device cuda --prompt-len "$len" --gen-len 4 --warmup 0 --warm-prefill \
      --vram-budget 100% --prefetch off --json "${flag[@]}" >"$f" 2>"${f%.json}.err" ||
      { echo "gpu-engine-bench: prefill $path $len failed"; tail -3 "${f%.json}.err"; rc=1; continue; }
    python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); j = j["runs"][0] if "runs" in j else j
print("%6s %5s %10.1f %8.2f" % (sys.argv[2], sys.argv[3], j["prefill_tok_s"], j["prefill_tflop_s"]))' "$f" "$len" "$path" || rc=1
  done
done
exit $rc
