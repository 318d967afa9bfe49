#!/usr/bin/env bash
# Offloaded decode: moe against the peer under one memory cgroup that holds part of the model.
#
#   LLAMA_CLI=/path/to/llama-cli bench/peers/peer_offload.sh MODEL.moepack MODEL.gguf
#
# Needs root (it makes a memory cgroup, v1 or v2, and drops the page cache before every run).
#
# Environment (defaults):
#   LLAMA_CLI      the peer's llama-cli (required)
#   LIMIT          the cgroup's memory limit in bytes (half the GGUF file)
#   RAM_BUDGET     moe --ram-budget (LIMIT less moe's dense bytes and 512 MiB for the KV cache,
#                  activations and the program); the rest of moe's flags: MOE_ARGS
#   THREADS=2 ROUNDS=2 PROMPT=64 GEN=64 SHORT=8
#   MOE            moe binary (build/tools/moe of this repository)
#   OUT            folder for the raw outputs (a new temporary folder)
#
# Each engine runs at its natural routing: the peer with sampling (llama-cli --temp 1 --ignore-eos,
# memory-mapped weights: the page cache inside the cgroup is its cache), moe with `moe bench`'s
# natural routing and then its forced uniform routing (every expert equally likely). Each runs twice,
# SHORT and GEN decode tokens, after `sync; echo 3 > /proc/sys/vm/drop_caches`; the disk bytes read per
# decode token are the difference of the two runs' reads (/proc/diskstats of the device under the
# files) over GEN - SHORT, the same count for both engines. moe's own counters (disk and missed
# expert bytes per token) come from --stats. Nothing else may use the disk meanwhile.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"
peer_start "$0" "$@"
: "${LLAMA_CLI:?set LLAMA_CLI to the llama-cli binary of the peer}"
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
PROMPT=${PROMPT:-64}
GEN=${GEN:-64}
SHORT=${SHORT:-8}
MOE_ARGS=${MOE_ARGS:-}
OUT=${OUT:-$(mktemp -d /tmp/peer-offload.XXXXXX)}
mkdir -p "$OUT"

LLAMA_CLI=$(realpath -m -- "$(command -v -- "$LLAMA_CLI" || echo "$LLAMA_CLI")")
OUT=$(realpath -m -- "$OUT")
peer_check "$LLAMA_CLI" "$MOE"
((GEN > SHORT)) || { echo "peer_offload: GEN ($GEN) must exceed SHORT ($SHORT)" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "peer_offload: needs root (memory cgroup, drop_caches)" >&2; exit 1; }

LIMIT=${LIMIT:-$(($(stat -c %s "$GGUF") / 2))}
if [[ -z ${RAM_BUDGET:-} ]]; then
  dense=$("$MOE" inspect -m "$PACK" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["dense_bytes"])' 2>/dev/null) ||
    { echo "peer_offload: could not read the pack's dense bytes (moe inspect --json); set RAM_BUDGET" >&2; exit 1; }
  RAM_BUDGET=$(((LIMIT - dense - (512 << 20)) / (1 << 20)))MiB
fi

# the memory cgroup (v2 if mounted so, else v1)
name=moe-peer-offload-$$
if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
  cg=/sys/fs/cgroup/$name; mkdir "$cg"; echo "$LIMIT" > "$cg/memory.max"; peak=memory.peak
else
  cg=/sys/fs/cgroup/memory/$name; mkdir "$cg"; echo "$LIMIT" > "$cg/memory.limit_in_bytes"; peak=memory.max_usage_in_bytes
fi
trap 'rmdir "$cg" 2>/dev/null || true' EXIT

dev=$(basename "$(df --output=source "$GGUF" | tail -1)")
[[ $dev == "$(basename "$(df --output=source "$PACK" | tail -1)")" ]] ||
  echo "peer_offload: the two files are on different devices; reads are counted on $dev only" >&2
sectors_read() { awk -v d="$dev" '$3 == d { print $6 }' /proc/diskstats; }
[[ -n $(sectors_read) ]] || { echo "peer_offload: no /proc/diskstats line for $dev" >&2; exit 1; }

# a fixed printable prompt of PROMPT bytes (one token per byte in make_gguf.py's vocabulary)
prompt=$(python3 -c "import random; r = random.Random(1); print(''.join(r.choice('abcdefghijklmnopqrstuvwxyz ') for _ in range($PROMPT)))")

run() {  # run NAME CMD...: in the cgroup, after dropping the page cache; writes NAME.log, NAME.io
  local name=$1; shift
  sync; echo 3 > /proc/sys/vm/drop_caches
  [[ $peak == memory.max_usage_in_bytes ]] && echo 0 > "$cg/$peak"
  local s0 t0 s1 t1
  s0=$(sectors_read); t0=$(date +%s.%N)
  # in OUT: llama-cli writes its main.log into the current folder
  (cd "$OUT" && exec bash -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' _ "$cg" "$@") \
    > "$OUT/$name.out" 2> "$OUT/$name.log" ||
    { echo "peer_offload: $name failed, see $OUT/$name.log" >&2; tail -5 "$OUT/$name.log" >&2; exit 1; }
  s1=$(sectors_read); t1=$(date +%s.%N)
  echo "{\"disk_bytes\": $(((s1 - s0) * 512)), \"seconds\": $(echo "$t1 - $t0" | bc), \"peak_bytes\": $(cat "$cg/$peak")}" > "$OUT/$name.io"
  echo "peer_offload: $name: $(cat "$OUT/$name.io")" >&2
}

cat > "$OUT/settings.json" <<EOF
{"threads": $THREADS, "prompt": $PROMPT, "gen": $GEN, "short": $SHORT, "rounds": $ROUNDS, "limit": $LIMIT,
 "ram_budget": "$RAM_BUDGET", "device": "$dev", "gguf": "$GGUF", "pack": "$PACK", "moe_args": "$MOE_ARGS"}
EOF
echo "peer_offload: limit $LIMIT bytes, moe --ram-budget $RAM_BUDGET, raw outputs in $OUT" >&2
for ((r = 1; r <= ROUNDS; r++)); do
  for n in "$SHORT" "$GEN"; do
    # -c: a context just big enough (the default, the model's 40960, would put GBs of KV cache in the cgroup)
    run "peer-n$n-r$r" "$LLAMA_CLI" -m "$GGUF" -t "$THREADS" -c $((PROMPT + GEN + 16)) -p "$prompt" -n "$n" \
      --temp 1 --ignore-eos -s "$r"
    for routing in natural uniform; do
      # shellcheck disable=SC2086
      run "moe-$routing-n$n-r$r" "$MOE" bench -m "$PACK" -t "$THREADS" --prompt-len "$PROMPT" --gen-len "$n" \
        --ram-budget "$RAM_BUDGET" --routing "$routing" --seed "$r" --stats --json $MOE_ARGS
    done
  done
done
python3 "$here/offload_report.py" "$OUT" | tee "$OUT/table.md"
