#!/usr/bin/env bash
# On a GPU machine, from the repository root with gpu-bundle-kernels.tar.xz and / or
# gpu-bundle-engine.tar.xz (scripts/gpu-build.sh) present: unpack them (recreating build-gpu/),
# run the CUDA tests whose executables are there, then the GEMV benchmark (with the kernels
# archive) and the engine benchmark (with the engine archive), and print a summary last, with
# each executable's wall time. Without an archive, build-gpu/ must hold what it runs.
# Needs only the CUDA driver (the executables are linked with -DMOE_PORTABLE=ON, glibc >= 2.35) and,
# for what links cuBLAS, the toolkit's libcublas (found below if the loader does not). When $OUT
# is set (the device runner's output folder), the logs and the test XML go there as one archive,
# gpu-check-logs.tgz, with summary.txt beside it.
#
# The tree is ~56 MiB of the 64 MiB a device call carries; gpu-build.sh says whether both
# archives fit beside it in one call. If so, carry both in one; if not, make two calls:
#   run: scripts/gpu-check.sh   carry: [gpu-bundle-kernels.tar.xz]   (~2-3 minutes on an H200)
#   run: scripts/gpu-check.sh   carry: [gpu-bundle-engine.tar.xz]    (the engine test and benchmark)
# Exit status: 0 when every test ran and passed and the benchmarks finished. ENGINE=0 skips the
# engine benchmark (scripts/gpu-engine-bench.sh, ~1.5 minutes on an H200 with its 18 GB synthetic pack).
set -uo pipefail
cd "$(dirname "$0")/.."

build="${BUILD_DIR:-build-gpu}"
# Logs go to a temp folder; with $OUT set (the device runner brings back at most 8 files) they
# end up as $OUT/gpu-check-logs.tgz, beside $OUT/summary.txt.
out="$(mktemp -d)"
for a in gpu-bundle-kernels.tar.xz gpu-bundle-engine.tar.xz; do
  [[ -f "$a" ]] || continue
  # Python's tarfile reads xz where no xz binary is installed.
  if command -v xz >/dev/null; then tar -xJf "$a"; else python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall()' "$a"; fi ||
    { echo "gpu-check: could not unpack $a" >&2; exit 1; }
  echo "gpu-check: unpacked $a ($(du -h "$a" | cut -f1))"
done
tests=()  # each writes $out/<name>.xml; all share tests.log
for t in test_qgemv_cuda test_ops_cuda test_router_cuda test_attention_cuda test_dense_gemm_cuda test_qgemv_grouped_cuda test_vram_cuda \
         test_gpu_engine_cuda; do
  [[ -x "$build/tests/gpu/$t" ]] && tests+=("$t")
done
bench_exe="$build/bench/bench_gpu"
[[ ${#tests[@]} -gt 0 ]] || { echo "gpu-check: no test executables under $build/tests/gpu; run scripts/gpu-build.sh and carry an archive" >&2; exit 1; }

# cuBLAS is the one shared library beyond the driver (scripts/gpu-build.sh says why): when the
# loader cannot find it, use the toolkit's lib64 (beside nvcc, else the newest /usr/local/cuda*).
cublas_user="$build/tests/gpu/test_dense_gemm_cuda"
[[ -x "$cublas_user" ]] || cublas_user="$build/tools/moe"
if ldd "$cublas_user" | grep -q 'libcublas.*not found'; then
  for d in "$(dirname "$(command -v nvcc 2>/dev/null || echo /nonexistent/bin/nvcc)")/../lib64" $(ls -d /usr/local/cuda*/lib64 2>/dev/null | sort -rV); do
    if compgen -G "$d/libcublas.so*" >/dev/null; then
      export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      echo "gpu-check: cuBLAS from $d"
      break
    fi
  done
fi
# Else a pip-installed cuBLAS (the nvidia-cublas wheel beside PyTorch).
if ldd "$cublas_user" | grep -q 'libcublas.*not found'; then
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
  limit=100
  [[ $t == test_gpu_engine_cuda ]] && limit=300  # every fixture family, each against the CPU engine
  timeout "$limit" "$build/tests/gpu/$t" --gtest_brief=1 --gtest_output="xml:$out/$t.xml" 2>&1 | tee -a "$out/tests.log"
  rc=${PIPESTATUS[0]}
  times+=("$t $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') $rc")
  [[ $rc == 0 ]] || test_rc=$rc  # the last failure's status
done

bench_rc=0
: >"$out/bench.log"
if [[ -x "$bench_exe" ]]; then
  echo "== benchmark"
  t0=$(now)
  timeout 120 "$bench_exe" 2>&1 | tee "$out/bench.log"
  bench_rc=${PIPESTATUS[0]}
  times+=("bench_gpu $(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') $bench_rc")
fi

# The GPU engine on a synthetic Qwen3-30B-A3B pack (scripts/gpu-engine-bench.sh), when moe is
# here; skip with ENGINE=0.
engine_rc=0
if [[ "${ENGINE:-1}" != 0 && -x "$build/tools/moe" ]]; then
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
grep -E '^(grouped|prompt)' "$out/bench.log"
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
