#!/usr/bin/env bash
# On a GPU machine, from the repository root with build-gpu/ (scripts/gpu-build.sh) present:
# run the CUDA kernel tests, then the GEMV benchmark, and print a summary table last.
# Needs only the CUDA driver (the executables are statically linked) and, for the cuBLAS test and
# the benchmark, the toolkit's libcublas (found below if the loader does not); < 5 minutes on an H100.
# When $OUT is set (the device runner's output folder), the logs and the test XML go there.
#
#   scripts/gpu-check.sh                 # BUILD_DIR=build-gpu by default
# Exit status: 0 when every test ran and passed and the benchmark finished.
set -uo pipefail
cd "$(dirname "$0")/.."

build="${BUILD_DIR:-build-gpu}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
tests=(test_qgemv_cuda test_ops_cuda test_attention_cuda)  # each writes $out/<name>.xml; all share tests.log
tests+=(test_dense_gemm_cuda)
tests+=(test_qgemv_grouped_cuda)
tests+=(test_vram_cuda)
bench_exe="$build/bench/bench_gpu"
for f in "${tests[@]/#/$build/tests/gpu/}" "$bench_exe"; do
  [[ -x "$f" ]] || { echo "gpu-check: $f missing; run scripts/gpu-build.sh first (and carry $build/)" >&2; exit 1; }
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

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== tests"
: >"$out/tests.log"
test_rc=0
for t in "${tests[@]}"; do
  timeout 240 "$build/tests/gpu/$t" --gtest_brief=1 --gtest_output="xml:$out/$t.xml" 2>&1 | tee -a "$out/tests.log"
  rc=${PIPESTATUS[0]}
  [[ $rc == 0 ]] || test_rc=$rc  # the last failure's status
done

echo "== benchmark"
timeout 150 "$bench_exe" 2>&1 | tee "$out/bench.log"
bench_rc=${PIPESTATUS[0]}

# Summed over the executables (each prints its own "[  PASSED  ] n tests" line).
count() { grep -oE "^\[ +$1 +\] [0-9]+ test" "$out/tests.log" | grep -oE '[0-9]+' | awk '{s += $1} END {print s + 0}'; }
passed=$(count PASSED); failed=$(count FAILED); skipped=$(count SKIPPED)
echo
echo "================ gpu-check summary ================"
printf 'tests:  %s passed, %s failed, %s skipped (exit %s)\n' "${passed:-0}" "${failed:-0}" "${skipped:-0}" "$test_rc"
grep -E '^\[  FAILED  \] [A-Za-z]' "$out/tests.log" | sort -u | head -20
printf 'bench:  exit %s\n' "$bench_rc"
grep -E '^(device|copy ceiling|pcie h2d|shape|qwen|mixtral|attention)' "$out/bench.log"
grep -E '^dense' "$out/bench.log"
grep -E '^grouped' "$out/bench.log"

status=0
[[ $test_rc == 0 ]] || status=1
[[ -z "$skipped" || "$skipped" == 0 ]] || { echo "gpu-check: tests were skipped (no usable GPU?)"; status=1; }
[[ $bench_rc == 0 ]] || status=1
echo "gpu-check: $([[ $status == 0 ]] && echo OK || echo FAILED)"
exit $status
