#!/usr/bin/env bash
# Peer benchmark: moe against ik_llama.cpp (or llama.cpp) on the same model shape and bytes.
#
#   LLAMA_BENCH=/path/to/llama-bench bench/peers/peer_bench.sh MODEL.moepack MODEL.gguf
#
# Environment (defaults):
#   LLAMA_BENCH    the peer's llama-bench (required)
#   THREADS=2 ROUNDS=3 PROMPT=512 GEN=64
#   MOE            moe binary (build/tools/moe of this repository)
#   BENCH_KERNELS  bench_kernels binary for the DramRead figure (build/bench/bench_kernels)
#   MOE_ARGS       extra `moe bench` flags (--warm-ram --kv-dtype f16: every expert in the RAM tier
#                  before timing, and the KV cache in f16 like llama-bench's default -ctk/-ctv f16,
#                  so both read the same cache bytes; moe's own default is f32)
#   PEER_ARGS      extra llama-bench flags (-mmp 0: weights read into memory at load, so the timed
#                  prefill never faults pages in from disk after a moe run evicted them)
#   DRAM_REPS=2    DramRead runs before the first and after the last round (the highest is the ceiling)
#   OUT            folder for the raw outputs (a new temporary folder)
#
# Each round runs the peer, then moe, with the same threads, prompt length and decode tokens:
#   peer: llama-bench -m GGUF -t THREADS -p PROMPT -n 0 -gp PROMPT,GEN -r 1 -o json
#         (-p: prefill of PROMPT random tokens; -gp: GEN decode steps after a PROMPT-token prefill,
#          only the decode timed, so both engines decode at the same depth)
#   moe:  moe bench -m PACK -t THREADS --prompt-len PROMPT --gen-len GEN --json
# The table gives per-round and median tok/s, moe/peer ratios, and achieved GB/s = bytes per decode
# token x decode tok/s against the DRAM figure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
peer_start "$0" "$@"
: "${LLAMA_BENCH:?set LLAMA_BENCH to the llama-bench binary of the peer}"
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
PROMPT=${PROMPT:-512}
GEN=${GEN:-64}
BENCH_KERNELS=${BENCH_KERNELS:-$repo/build/bench/bench_kernels}
MOE_ARGS=${MOE_ARGS---warm-ram --kv-dtype f16}
PEER_ARGS=${PEER_ARGS--mmp 0}
OUT=${OUT:-$(mktemp -d /tmp/peer-bench.XXXXXX)}
mkdir -p "$OUT"

peer_check "$LLAMA_BENCH" "$MOE"
python3 -c 'import gguf' 2>/dev/null ||
  { echo "peer_bench: needs the PyPI gguf package: pip install -r $here/requirements.txt" >&2; exit 1; }

dram() {  # DRAM_REPS DramRead figures at THREADS (else every registered thread count) into dram.txt
  if [[ ! -x $BENCH_KERNELS ]]; then echo "peer_bench: no $BENCH_KERNELS: no DRAM figure" >&2; return 0; fi
  local filter="DramRead/${THREADS}/" i
  "$BENCH_KERNELS" --benchmark_list_tests=true 2>/dev/null | grep -q "^$filter" || filter="DramRead"
  for ((i = 0; i < ${DRAM_REPS:-2}; i++)); do
    "$BENCH_KERNELS" --benchmark_filter="$filter" 2>&1 | grep "DRAM read" | tee -a "$OUT/dram.txt" >&2 || true
  done
  cut -d' ' -f1-3 /proc/loadavg >> "$OUT/loadavg.txt"
}

peer_cmd=("$LLAMA_BENCH" -m "$GGUF" -t "$THREADS" -p "$PROMPT" -n 0 -gp "$PROMPT,$GEN" -r 1 -o json)
# shellcheck disable=SC2206
peer_cmd+=($PEER_ARGS)
moe_cmd=("$MOE" bench -m "$PACK" -t "$THREADS" --prompt-len "$PROMPT" --gen-len "$GEN" --json)
# shellcheck disable=SC2206
moe_cmd+=($MOE_ARGS)

bpt=$(python3 "$here/peer_report.py" gguf-bytes "$GGUF")
python3 - "$OUT/settings.json" <<EOF
import json, sys
json.dump({"threads": $THREADS, "prompt": $PROMPT, "gen": $GEN, "rounds": $ROUNDS,
           "gguf_bytes_per_token": $bpt, "peer_cmd": """${peer_cmd[*]}""", "moe_cmd": """${moe_cmd[*]}"""},
          open(sys.argv[1], "w"), indent=1)
EOF

echo "peer_bench: raw outputs in $OUT" >&2
: > "$OUT/dram.txt"
: > "$OUT/loadavg.txt"
# The CPU, so a table says where it was measured (the same script gave 1.09x on a Zen 4 and 1.58x on
# an Emerald Rapids VM: the ratio is a property of the machine as much as of the engines).
# "key: value" lines: /proc/cpuinfo's model name, family and model where it has them (a VM may name
# only "Intel(R) Xeon(R) Processor"), then the logical CPUs.
{ grep -m3 -E '^(model name|cpu family|model)[[:space:]]*:' /proc/cpuinfo | sed 's/[[:space:]]*:[[:space:]]*/: /'
  echo "logical CPUs: $(nproc)"; } > "$OUT/cpu.txt" 2>/dev/null || true
dram
for ((r = 1; r <= ROUNDS; r++)); do
  echo "peer_bench: round $r/$ROUNDS: peer" >&2
  "${peer_cmd[@]}" > "$OUT/peer-r$r.json" 2> "$OUT/peer-r$r.log" ||
    { echo "peer_bench: llama-bench failed, see $OUT/peer-r$r.log" >&2; tail -5 "$OUT/peer-r$r.log" >&2; exit 1; }
  echo "peer_bench: round $r/$ROUNDS: moe" >&2
  "${moe_cmd[@]}" > "$OUT/moe-r$r.json" 2> "$OUT/moe-r$r.log" ||
    { echo "peer_bench: moe bench failed, see $OUT/moe-r$r.log" >&2; tail -5 "$OUT/moe-r$r.log" >&2; exit 1; }
done
dram
python3 "$here/peer_report.py" table "$OUT" | tee "$OUT/table.md"
