#!/usr/bin/env bash
# Decode speed of the big offloaded shapes (DeepSeek-V3, gpt-oss-120b, Qwen3.5-35B-A3B with its
# 512-token prefill and the share of time in gated DeltaNet layers) on this CPU, beside the
# DRAM and disk read ceilings measured in the same run. Synthetic packs with the real per-layer
# shapes (`moe synth --layers N` keeps the first N layers), uniform forced routing so every
# expert is equally likely (the case offloading is hardest on), resident and at a 25% RAM budget.
#   scripts/bench-big-shapes.sh            # writes packs under $DIR (about 50 GB), prints a table
# Env: DIR (default /tmp/moe-big-shapes), DS_LAYERS (8), GO_LAYERS (6), QW_LAYERS (20), GEN (16),
#      THREADS (2), ONLY (a space-separated subset of: ds go qw), KEEP=1 keeps the packs.
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe}
BK=${BENCH_KERNELS:-build/bench/bench_kernels}
DIR=${DIR:-/tmp/moe-big-shapes}
DS_LAYERS=${DS_LAYERS:-8}
GO_LAYERS=${GO_LAYERS:-6}
QW_LAYERS=${QW_LAYERS:-20}
ONLY=${ONLY:-ds go qw}
GEN=${GEN:-16}
THREADS=${THREADS:-2}
mkdir -p "$DIR"

ds="$DIR/deepseek-v3-l$DS_LAYERS.moepack"
go="$DIR/gpt-oss-120b-l$GO_LAYERS.moepack"
qw="$DIR/qwen3.5-35b-a3b-l$QW_LAYERS.moepack"
want() { [[ " $ONLY " == *" $1 "* ]]; }
if want ds && [ ! -f "$ds" ]; then "$MOE" synth --shape deepseek-v3 --layers "$DS_LAYERS" --dense int8 --out "$ds" -t "$THREADS"; fi
if want go && [ ! -f "$go" ]; then "$MOE" synth --shape gpt-oss-120b --layers "$GO_LAYERS" --dense int8 --out "$go" -t "$THREADS"; fi
if want qw && [ ! -f "$qw" ]; then "$MOE" synth --shape qwen3.5-35b-a3b --layers "$QW_LAYERS" --dense int8 --out "$qw" -t "$THREADS"; fi
any=$(ls "$DIR"/*.moepack | head -1)

echo "== ceilings" >&2
"$BK" --benchmark_filter="DramRead/$THREADS/" --benchmark_format=json --benchmark_repetitions=3 \
  --benchmark_report_aggregates_only=true > "$DIR/dram.json"
# --io-seconds 20 (10 s of sequential reads, then 10 of random), not 6: a VM's virtual disk reads
# faster for its first seconds than it sustains (2.15-2.27 GB/s over 3 s against 1.59-1.88 over 15 s
# on the Zen 4 VM), and decode reads for longer.
"$MOE" bench --model "$any" --io-only --io-seconds 20 --json > "$DIR/io.json"

run() {  # name pack budget prompt-len [--warm-ram: resident, every expert read before timing]
  echo "== $1" >&2
  "$MOE" bench --model "$2" --routing uniform --ram-budget "$3" --prompt-len "$4" --gen-len "$GEN" --warmup 4 \
    -t "$THREADS" ${5:-} --json > "$DIR/$1.json"
}
# DeepSeek-V3 at --layers 8 holds ~30 GB of experts: resident only where RAM allows.
if want ds; then
  mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
  ds_expert_bytes=$("$MOE" inspect --json --model "$ds" | python3 -c "import json,sys; print(json.load(sys.stdin)['expert_bytes_total'])")
  if [ $((mem_kb * 1024 * 8 / 10)) -gt "$ds_expert_bytes" ]; then run ds-resident "$ds" 100% 16 --warm-ram; fi
  run ds-25 "$ds" 25% 16
fi
if want go; then
  run go-resident "$go" 100% 16 --warm-ram
  run go-25 "$go" 25% 16
fi
if want qw; then
  run qw-resident "$qw" 100% 512 --warm-ram
  run qw-25 "$qw" 25% 512
fi

python3 - "$DIR" <<'PY'
import json, os, sys
d = sys.argv[1]
# bench_kernels prints a summary line after its JSON.
doc, _ = json.JSONDecoder().raw_decode(open(f"{d}/dram.json").read())
dram = [b for b in doc["benchmarks"] if b.get("aggregate_name") == "median"][0]
dram_gbs = dram["bytes/s"] / 1e9
io = json.load(open(f"{d}/io.json"))
disk_gbs = io["disk_seq_bytes_per_s"] / 1e9
print(f"DRAM read (bench_kernels DramRead, median of 3): {dram_gbs:.1f} GB/s; disk O_DIRECT sequential read over 10 s: {disk_gbs:.2f} GB/s")
print("| run | prefill tok/s (prompt) | decode tok/s | GB/s of weights | of DRAM | disk MB/token | disk bound tok/s | "
      "of disk bound | hit rate | DeltaNet share prefill / decode |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name in ["ds-resident", "ds-25", "go-resident", "go-25", "qw-resident", "qw-25"]:
    p = f"{d}/{name}.json"
    if not os.path.exists(p):
        if name == "ds-resident" and os.path.exists(f"{d}/ds-25.json"):
            print(f"| {name} | not run: experts exceed this machine's RAM | | | | | | | | |")
        continue
    j = json.load(open(p))
    tok, gbs, disk = j["decode_tok_s"], j["decode_gb_s"], j["disk_bytes_per_token"]
    bound = disk_gbs * 1e9 / disk if disk > 0 else float("inf")
    share = (f"{100*j['prefill_time_share']['linear_attention']:.0f}% / {100*j['decode_time_share']['linear_attention']:.0f}%"
             if "decode_time_share" in j else "")
    print(f"| {name} | {j['prefill_tok_s']:.1f} ({j['prompt_len']}) | {tok:.2f} | {gbs:.1f} | {100*gbs/dram_gbs:.0f}% | "
          f"{disk/1e6:.0f} | {bound:.2f} | {100*tok/bound if disk else float('nan'):.0f}% | {j['ram_hit_rate']:.2f} | {share} |")
PY
[ "${KEEP:-0}" = 1 ] || rm -f "$ds" "$go" "$qw"
