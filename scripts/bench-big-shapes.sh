#!/usr/bin/env bash
# Decode speed of the big offloaded shapes (DeepSeek-V3, gpt-oss-120b) on this CPU, beside the
# DRAM and disk read ceilings measured in the same run. Synthetic packs with the real per-layer
# shapes (`moe synth --layers N` keeps the first N layers), uniform forced routing so every
# expert is equally likely (the case offloading is hardest on), resident and at a 25% RAM budget.
#   scripts/bench-big-shapes.sh            # writes packs under $DIR (about 50 GB), prints a table
# Env: DIR (default /tmp/moe-big-shapes), DS_LAYERS (8), GO_LAYERS (6), GEN (16), THREADS (2),
#      KEEP=1 keeps the packs.
set -euo pipefail
cd "$(dirname "$0")/.."
MOE=${MOE:-build/tools/moe}
BK=${BENCH_KERNELS:-build/bench/bench_kernels}
DIR=${DIR:-/tmp/moe-big-shapes}
DS_LAYERS=${DS_LAYERS:-8}
GO_LAYERS=${GO_LAYERS:-6}
GEN=${GEN:-16}
THREADS=${THREADS:-2}
mkdir -p "$DIR"

ds="$DIR/deepseek-v3-l$DS_LAYERS.moepack"
go="$DIR/gpt-oss-120b-l$GO_LAYERS.moepack"
[ -f "$ds" ] || "$MOE" synth --shape deepseek-v3 --layers "$DS_LAYERS" --dense int8 --out "$ds" -t "$THREADS"
[ -f "$go" ] || "$MOE" synth --shape gpt-oss-120b --layers "$GO_LAYERS" --dense int8 --out "$go" -t "$THREADS"

echo "== ceilings" >&2
"$BK" --benchmark_filter="DramRead/$THREADS/" --benchmark_format=json --benchmark_repetitions=3 \
  --benchmark_report_aggregates_only=true > "$DIR/dram.json"
"$MOE" bench --model "$ds" --io-only --io-seconds 6 --json > "$DIR/io.json"

run() {  # name pack budget [--warm-ram: resident, every expert read before timing]
  echo "== $1" >&2
  "$MOE" bench --model "$2" --routing uniform --ram-budget "$3" --prompt-len 16 --gen-len "$GEN" --warmup 4 \
    -t "$THREADS" ${4:-} --json > "$DIR/$1.json"
}
# DeepSeek-V3 at --layers 8 holds ~30 GB of experts: resident only where RAM allows.
mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
ds_expert_bytes=$("$MOE" inspect --json --model "$ds" | python3 -c "import json,sys; print(json.load(sys.stdin)['expert_bytes_total'])")
if [ $((mem_kb * 1024 * 8 / 10)) -gt "$ds_expert_bytes" ]; then run ds-resident "$ds" 100% --warm-ram; fi
run ds-25 "$ds" 25%
run go-resident "$go" 100% --warm-ram
run go-25 "$go" 25%

python3 - "$DIR" <<'PY'
import json, os, sys
d = sys.argv[1]
# bench_kernels prints a summary line after its JSON.
doc, _ = json.JSONDecoder().raw_decode(open(f"{d}/dram.json").read())
dram = [b for b in doc["benchmarks"] if b.get("aggregate_name") == "median"][0]
dram_gbs = dram["bytes/s"] / 1e9
io = json.load(open(f"{d}/io.json"))
disk_gbs = io["disk_seq_bytes_per_s"] / 1e9
print(f"DRAM read (bench_kernels DramRead, median of 3): {dram_gbs:.1f} GB/s; disk O_DIRECT read: {disk_gbs:.2f} GB/s")
print(f"| run | tok/s | GB/s of weights | of DRAM | disk MB/token | disk bound tok/s | of disk bound | hit rate |")
print(f"|---|---|---|---|---|---|---|---|")
for name in ["ds-resident", "ds-25", "go-resident", "go-25"]:
    p = f"{d}/{name}.json"
    if not os.path.exists(p):
        print(f"| {name} | not run: experts exceed this machine's RAM | | | | | | |"); continue
    j = json.load(open(p))
    tok, gbs, disk = j["decode_tok_s"], j["decode_gb_s"], j["disk_bytes_per_token"]
    bound = disk_gbs * 1e9 / disk if disk > 0 else float("inf")
    print(f"| {name} | {tok:.2f} | {gbs:.1f} | {100*gbs/dram_gbs:.0f}% | {disk/1e6:.0f} | "
          f"{bound:.2f} | {100*tok/bound if disk else float('nan'):.0f}% | {j['ram_hit_rate']:.2f} |")
PY
[ "${KEEP:-0}" = 1 ] || rm -f "$ds" "$go"
