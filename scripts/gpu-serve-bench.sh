#!/usr/bin/env bash
# On a GPU machine, from the repository root with gpu-bundle-engine.tar.xz (scripts/gpu-build.sh) present:
# the serve scheduler's batched decode on a synthetic Qwen3-30B-A3B INT4 pack with every expert in
# VRAM, at 1, 4 and 16 clients (moe serve-bench: no HTTP, which MOE_PORTABLE builds lack), natural
# and uniform routing, against the device copy ceiling measured in the same run (bench_gpu), and
# moe bench's single-sequence decode on the same pack. Results also in $OUT when set.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$(mktemp -d)}"
if [[ -f gpu-bundle-engine.tar.xz ]]; then  # Python's tarfile where no xz binary is installed
  if command -v xz >/dev/null; then tar -xJf gpu-bundle-engine.tar.xz
  else python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall()' gpu-bundle-engine.tar.xz; fi
fi
B=build-gpu/tools/moe
if ldd $B | grep -q 'libcublas.*not found'; then
  for d in $(ls -d /usr/local/cuda*/lib64 2>/dev/null | sort -rV); do
    if compgen -G "$d/libcublas.so*" >/dev/null; then export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; break; fi
  done
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
ceil=$(timeout 60 build-gpu/bench/bench_gpu 2>&1 | tee $OUT/bench_gpu.log | grep -m1 '^copy ceiling' | awk '{print $3}')
echo "copy ceiling $ceil GB/s"
[[ -f /tmp/q30.moepack ]] || { t0=$(date +%s); $B synth --shape qwen3-30b-a3b -o /tmp/q30.moepack 2>&1 | tail -1; echo "synth $(( $(date +%s) - t0 )) s"; }
for r in natural uniform; do
  echo "== serve-bench routing $r"
  timeout 150 $B serve-bench --model /tmp/q30.moepack --device cuda --vram-budget 100% --clients 1,4,16 --prompt-len 128 --gen-len 64 --routing $r --ceiling ${ceil:-4227} 2>&1 | tee $OUT/serve-bench-$r.txt
done
echo "== moe bench (one sequence, the same pack)"
timeout 90 $B bench --model /tmp/q30.moepack --device cuda --vram-budget 100% --prompt-len 128 --gen-len 64 2>&1 | tail -4 | tee $OUT/bench.txt
