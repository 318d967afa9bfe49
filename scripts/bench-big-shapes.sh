#!/usr/bin/env bash
# Decode speed of the big offloaded shapes (DeepSeek-V3, gpt-oss-120b, Qwen3.5-35B-A3B with its
# 512-token prefill and the share of time in gated DeltaNet layers) on this CPU, beside the
# DRAM and disk read ceilings measured in the same run. Synthetic packs with the real per-layer
# shapes (`moe synth --layers N` keeps the first N layers), uniform forced routing so every
# expert is equally likely (the case offloading is hardest on), resident and at a 25% RAM budget.
# Each offloaded run reads the disk for 10 s just before it (`moe bench --disk-probe`): a VM's
# disk rate moves by a third within minutes. Two disk ceilings: sequential reads, and reads of
# whole expert records at random places (what uniform routing makes a 25% budget read).
# Offloaded runs compare prefetch off and auto: under forced routing the gate predictor guesses
# the routing the random router would have chosen.
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
for m in $ONLY; do rm -f "$DIR/$m"-*.json; done  # no figures from an earlier run in this table

ds="$DIR/deepseek-v3-l$DS_LAYERS.moepack"
go="$DIR/gpt-oss-120b-l$GO_LAYERS.moepack"
qw="$DIR/qwen3.5-35b-a3b-l$QW_LAYERS.moepack"
want() { [[ " $ONLY " == *" $1 "* ]]; }
if want ds && [ ! -f "$ds" ]; then "$MOE" synth --shape deepseek-v3 --layers "$DS_LAYERS" --dense int8 --out "$ds" -t "$THREADS"; fi
if want go && [ ! -f "$go" ]; then "$MOE" synth --shape gpt-oss-120b --layers "$GO_LAYERS" --dense int8 --out "$go" -t "$THREADS"; fi
if want qw && [ ! -f "$qw" ]; then "$MOE" synth --shape qwen3.5-35b-a3b --layers "$QW_LAYERS" --dense int8 --out "$qw" -t "$THREADS"; fi

sync  # a fresh pack's dirty pages written back now, not during the first measurements
echo "== ceilings" >&2
"$BK" --benchmark_filter="DramRead/$THREADS/" --benchmark_format=json --benchmark_repetitions=3 \
  --benchmark_report_aggregates_only=true > "$DIR/dram.json"

run() {  # name pack budget prompt-len [extra flags: --warm-ram (resident) or the offloaded ones]
  echo "== $1" >&2
  "$MOE" bench --model "$2" --routing uniform --ram-budget "$3" --prompt-len "$4" --gen-len "$GEN" --warmup 4 \
    -t "$THREADS" ${5:-} --json > "$DIR/$1.json"
}
offloaded="--disk-probe 10 --prefetch off,auto"
# DeepSeek-V3 at --layers 8 holds ~30 GB of experts: resident only where RAM allows.
if want ds; then
  mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
  ds_expert_bytes=$("$MOE" inspect --json --model "$ds" | python3 -c "import json,sys; print(json.load(sys.stdin)['expert_bytes_total'])")
  if [ $((mem_kb * 1024 * 8 / 10)) -gt "$ds_expert_bytes" ]; then run ds-resident "$ds" 100% 16 --warm-ram; fi
  run ds-25 "$ds" 25% 16 "$offloaded"
fi
if want go; then
  run go-resident "$go" 100% 16 --warm-ram
  run go-25 "$go" 25% 16 "$offloaded"
fi
if want qw; then
  run qw-resident "$qw" 100% 512 --warm-ram
  run qw-25 "$qw" 25% 512 "$offloaded"
fi

python3 - "$DIR" "$ONLY" <<'PY'
import json, os, sys
d = sys.argv[1]
# bench_kernels prints a summary line after its JSON.
doc, _ = json.JSONDecoder().raw_decode(open(f"{d}/dram.json").read())
dram = [b for b in doc["benchmarks"] if b.get("aggregate_name") == "median"][0]
dram_gbs = dram["bytes/s"] / 1e9
print(f"DRAM read (bench_kernels DramRead, median of 3): {dram_gbs:.1f} GB/s. Offloaded rows: the disk's O_DIRECT "
      "read rates in the 10 s before each (5 s sequential, 5 s of whole expert records at random places; 64 MiB "
      "in flight)")
print("| run | prefetch | prefill tok/s (prompt) | decode tok/s | GB/s of weights | of DRAM | disk MB/token | "
      "sequential GB/s | **of its bound** | records GB/s | **of its bound** | of the bound with reads after routing | "
      "hit rate | DeltaNet share prefill / decode |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for name in ["ds-resident", "ds-25", "go-resident", "go-25", "qw-resident", "qw-25"]:
    if name.split("-")[0] not in sys.argv[2].split():
        continue
    p = f"{d}/{name}.json"
    if not os.path.exists(p):
        if name == "ds-resident" and os.path.exists(f"{d}/ds-25.json"):
            print(f"| {name} | | not run: experts exceed this machine's RAM | | | | | | | | | | | |")
        continue
    doc = json.load(open(p))
    for j in doc.get("runs", [doc]):
        tok, gbs, disk = j["decode_tok_s"], j["decode_gb_s"], j["disk_bytes_per_token"]
        share = (f"{100*j['prefill_time_share']['linear_attention']:.0f}% / {100*j['decode_time_share']['linear_attention']:.0f}%"
                 if "decode_time_share" in j else "")
        if "of_disk_bound" in j:
            probe = (f"{disk/1e6:.0f} | {j['disk_seq_bytes_per_s']/1e9:.2f} | **{100*j['of_disk_bound']:.0f}%** | "
                     f"{j['disk_expert_reads_bytes_per_s']/1e9:.2f} | **{100*j['of_expert_reads_bound']:.0f}%** | "
                     f"{100*j['of_routed_bound']:.0f}%")
        else:
            probe = "0 | | | | | "
        print(f"| {name} | {j['prefetch']} | {j['prefill_tok_s']:.1f} ({j['prompt_len']}) | {tok:.2f} | {gbs:.1f} | "
              f"{100*gbs/dram_gbs:.0f}% | {probe} | {j['ram_hit_rate']:.2f} | {share} |")
PY
[ "${KEEP:-0}" = 1 ] || rm -f "$ds" "$go" "$qw"
