#!/usr/bin/env bash
# On a GPU machine, from the repository root with build-gpu/ (scripts/gpu-build.sh) present:
# run the CUDA kernel tests, then the GEMV benchmark, and print a summary table last.
# Needs only the CUDA driver (the executables are statically linked); < 5 minutes on an H100.
# When $OUT is set (the device runner's output folder), the logs and the test XML go there.
#
#   scripts/gpu-check.sh                 # BUILD_DIR=build-gpu by default
# Exit status: 0 when every test ran and passed and the benchmark finished.
set -uo pipefail
cd "$(dirname "$0")/.."

build="${BUILD_DIR:-build-gpu}"
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
test_exe="$build/tests/gpu/test_qgemv_cuda"
bench_exe="$build/bench/bench_gpu"
for f in "$test_exe" "$bench_exe"; do
  [[ -x "$f" ]] || { echo "gpu-check: $f missing; run scripts/gpu-build.sh first (and carry $build/)" >&2; exit 1; }
done

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== tests"
timeout 240 "$test_exe" --gtest_brief=1 --gtest_output="xml:$out/test_qgemv_cuda.xml" 2>&1 | tee "$out/tests.log"
test_rc=${PIPESTATUS[0]}

echo "== benchmark"
timeout 150 "$bench_exe" 2>&1 | tee "$out/bench.log"
bench_rc=${PIPESTATUS[0]}

count() { grep -oE "^\[ +$1 +\] [0-9]+ test" "$out/tests.log" | grep -oE '[0-9]+' | head -1; }
passed=$(count PASSED); failed=$(count FAILED); skipped=$(count SKIPPED)
echo
echo "================ gpu-check summary ================"
printf 'tests:  %s passed, %s failed, %s skipped (exit %s)\n' "${passed:-0}" "${failed:-0}" "${skipped:-0}" "$test_rc"
grep -E '^\[  FAILED  \] [A-Za-z]' "$out/tests.log" | sort -u | head -20
printf 'bench:  exit %s\n' "$bench_rc"
grep -E '^(device|copy ceiling|shape|qwen|mixtral)' "$out/bench.log"

status=0
[[ $test_rc == 0 ]] || status=1
[[ -z "$skipped" || "$skipped" == 0 ]] || { echo "gpu-check: tests were skipped (no usable GPU?)"; status=1; }
[[ $bench_rc == 0 ]] || status=1
echo "gpu-check: $([[ $status == 0 ]] && echo OK || echo FAILED)"
exit $status
