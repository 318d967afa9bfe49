#!/usr/bin/env bash
# On a GPU machine, from the repository root with gpu-bundle.tgz (scripts/gpu-build.sh) present:
# unpack it (recreating build-gpu/), run the CUDA tests, then the GEMV benchmark, and print a
# summary last, with each executable's wall time. Without the bundle, build-gpu/ must be there.
# Needs only the CUDA driver (the executables are linked with -DMOE_PORTABLE=ON, glibc >= 2.35) and,
# for what links cuBLAS, the toolkit's libcublas (found below if the loader does not); < 5 minutes
# on an H100. When $OUT is set (the device runner's output folder), the logs and the test XML go
# there as one archive, gpu-check-logs.tgz, with summary.txt beside it.
#
#   scripts/gpu-check.sh                 # BUILD_DIR=build-gpu by default
# Exit status: 0 when every test ran and passed and the benchmarks finished. ENGINE=0 skips the
# engine benchmark (scripts/gpu-engine-bench.sh, ~1.5 minutes on an H200 with its 18 GB synthetic pack).
set -uo pipefail
cd "$(dirname "$0")/.."

build="${BUILD_DIR:-build-gpu}"
# Logs go to a temp folder; with $OUT set (the device runner brings back at most 8 files) they
# end up as $OUT/gpu-check-logs.tgz, beside $OUT/summary.txt.
out="$(mktemp -d)"
if [[ -f gpu-bundle.tgz ]]; then
  tar -xzf gpu-bundle.tgz || { echo "gpu-check: could not unpack gpu-bundle.tgz" >&2; exit 1; }
  echo "gpu-check: unpacked gpu-bundle.tgz ($(du -h gpu-bundle.tgz | cut -f1))"
fi
tests=(test_qgemv_cuda test_ops_cuda test_attention_cuda)  # each writes $out/<name>.xml; all share tests.log
tests+=(test_dense_gemm_cuda)
tests+=(test_qgemv_grouped_cuda)
tests+=(test_vram_cuda)
# The GPU engine test, when the bundle has it (gpu-build.sh builds it once the target exists).
[[ -x "$build/tests/gpu/test_gpu_engine_cuda" ]] && tests+=(test_gpu_engine_cuda)
bench_exe="$build/bench/bench_gpu"
for f in "${tests[@]/#/$build/tests/gpu/}" "$bench_exe"; do
  [[ -x "$f" ]] || { echo "gpu-check: $f missing; run scripts/gpu-build.sh first (and carry gpu-bundle.tgz)" >&2; exit 1; }
done

# cuBLAS is the one shared library beyond the driver (scripts/gpu-build.sh says why): when the
# loader cannot find it, use the toolkit's lib64 (beside nvcc, else the newest /usr/local/cuda*).
if ldd "$build/tests/gpu/test_dense_gemm_cuda" | grep -q 'libcublas.*not found'; then
  for d in "$(dirname "$(command -v nvcc 2>/dev/null || echo /nonexistent/bin/nvcc)")/../lib64" $(ls -d /usr/local/cuda*/lib64 2>/dev/null | sort -rV); do
    if compgen -G "$d/libcublas.so*" >/dev/null; then
      export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      echo "gpu-check: cuBLAS from $d"
      break
    fi
  done
fi
# Else a pip-installed cuBLAS (the nvidia-cublas wheel beside PyTorch).
if ldd "$build/tests/gpu/test_dense_gemm_cuda" | grep -q 'libcublas.*not found'; then
  lib=$(find /usr/local /opt /usr/lib -name 'libcublasLt.so.1*' 2>/dev/null | sort -rV | head -1)
  if [[ -n "$lib" ]]; then
    export LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "gpu-check: cuBLAS from $(dirname "$lib")"
  fi
fi

# Tests that read fixtures (tests/fixtures, models/) find them here, not at the build machine's path.
export MOE_SOURCE_DIR="$PWD"
export MOE_BINARY="$PWD/$build/tools/moe"  # tests that convert a fixture to a pack run it

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== tests"
: >"$out/tests.log"
test_rc=0
times=()  # "name seconds exit", one per executable, for the summary
now() { date +%s.%N; }
for t in "${tests[@]}"; do
  t0=$(now)
  timeout 100 "$build/tests/gpu/$t" --gtest_brief=1 --gtest_output="xml:$out/$t.xml" 2>&1 | tee -a "$out/tests.log"
  rc=${PIPESTATUS[0]}
  times+=("$t $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') $rc")
  [[ $rc == 0 ]] || test_rc=$rc  # the last failure's status
done

echo "== benchmark"
t0=$(now)
timeout 120 "$bench_exe" 2>&1 | tee "$out/bench.log"
bench_rc=${PIPESTATUS[0]}
times+=("bench_gpu $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') $bench_rc")

# The GPU engine on a synthetic Qwen3-30B-A3B pack (scripts/gpu-engine-bench.sh); skip with ENGINE=0.
engine_rc=0
if [[ "${ENGINE:-1}" != 0 ]]; then
  echo "== engine"
  t0=$(now)
  OUT="$out" scripts/gpu-engine-bench.sh 2>&1 | tee "$out/engine.log"
  engine_rc=${PIPESTATUS[0]}
  times+=("engine-bench $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') $engine_rc")
fi

# Summed over the executables (each prints its own "[  PASSED  ] n tests" line).
count() { grep -oE "^\[ +$1 +\] [0-9]+ test" "$out/tests.log" | grep -oE '[0-9]+' | awk '{s += $1} END {print s + 0}'; }
passed=$(count PASSED); skipped=$(count SKIPPED)
# --gtest_brief prints no "[  FAILED  ] n tests" total: count the failed tests' own lines.
failures=$(grep -E '^\[  FAILED  \] [A-Za-z]' "$out/tests.log" | sort -u)
failed=$(sed 's/ (.*//' <<<"$failures" | sort -u | grep -c .)
summary() {
echo "================ gpu-check summary ================"
printf 'tests:  %s passed, %s failed, %s skipped (exit %s)\n' "${passed:-0}" "${failed:-0}" "${skipped:-0}" "$test_rc"
[[ -z "$failures" ]] || head -20 <<<"$failures"
for r in "${times[@]}"; do
  read -r name secs rc <<<"$r"
  printf 'time:   %-26s %7s s  (exit %s%s)\n' "$name" "$secs" "$rc" "$([[ $rc == 124 ]] && echo ', timed out')"
done
printf 'bench:  exit %s\n' "$bench_rc"
grep -E '^(device|copy ceiling|pcie h2d|shape|qwen|mixtral|attention)' "$out/bench.log"
grep -E '^dense' "$out/bench.log"
grep -E '^grouped' "$out/bench.log"
if [[ -f "$out/engine.log" ]]; then
  printf 'engine: exit %s\n' "$engine_rc"
  sed -n '/^ *budget /,$p' "$out/engine.log"
fi

# Failures last too, so that the end of the output (all a remote runner may show) names them.
[[ -z "$failures" ]] || head -20 <<<"$failures"
}
echo
summary | tee "$out/summary.txt"
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  cp "$out/summary.txt" "$OUT/summary.txt"
  tar -czf "$OUT/gpu-check-logs.tgz" -C "$out" . && echo "gpu-check: logs in \$OUT/gpu-check-logs.tgz"
fi

status=0
[[ $test_rc == 0 ]] || status=1
[[ -z "$skipped" || "$skipped" == 0 ]] || { echo "gpu-check: tests were skipped (no usable GPU?)"; status=1; }
[[ $bench_rc == 0 ]] || status=1
[[ $engine_rc == 0 ]] || status=1
echo "gpu-check: $([[ $status == 0 ]] && echo OK || echo FAILED)"
exit $status
