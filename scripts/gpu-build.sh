#!/usr/bin/env bash
# Build the CUDA tests, the GEMV benchmark and the `moe` CLI for a GPU machine with only the CUDA
# driver and toolkit on it (no Debian -dev packages, no network, glibc possibly 2.35), and pack
# them into two archives at the repository root, which scripts/gpu-check.sh unpacks and runs
# there, one device call each (see "What travels" below). Runs on the build machine (nvcc
# needed, no GPU needed).
#
#   scripts/gpu-build.sh                 # sm_90 (H100/H200)
#   GPU_ARCH=89 scripts/gpu-build.sh     # another architecture (80, 86, 89, 90, 120; "sm_" optional)
#   JOBS=1 scripts/gpu-build.sh          # parallel jobs (default: all cores)
#
# Built in build-gpu/ (BUILD_DIR, relative to the repository root) with -DMOE_PORTABLE=ON
# (cmake/MoePortable.cmake): fmt header-only, zstd/liburing/xxhash/pcre2/utf8proc as their .a,
# libstdc++/libgcc static and kernels/cuda/glibc_compat.c in every executable; cudart and gtest
# are static anyway. Only the GPU tests (tests/gpu: the test_*_cuda targets below, plus
# test_gpu_engine_cuda once it exists), bench_gpu and moe are built. They are stripped, then
# checked: `ldd` may show nothing beyond libc/libm/libpthread/libdl/librt, the loader and
# libcuda, and no symbol may need a glibc newer than 2.35.
#
# Exception, cuBLAS (through kernels/cuda/dense_gemm.h: test_dense_gemm_cuda, bench_gpu, and
# whatever links moe_kernels_cublas): linked as a shared library. This toolkit ships no
# libcublas_static.a / libcublasLt_static.a, and libcublasLt alone is ~540 MB, far over what
# travels. The GPU machine has the CUDA toolkit (libcublas.so.13, libcublasLt.so.13): the
# executables find it through the toolkit RUNPATH CMake records, else scripts/gpu-check.sh puts
# its lib64 on LD_LIBRARY_PATH. So libcublas, libcublasLt and their libgcc_s are allowed by the
# ldd check.
#
# What travels to the GPU machine is at most 64 MiB: the tracked tree (plus untracked files git
# does not ignore) and the carried paths. The tree alone is ~56 MiB (the HF fixtures and the
# tiny model), so the stripped executables travel as two xz archives (paths kept under build-gpu/),
# which may each need their own device call beside the tree:
#   gpu-bundle-kernels.tar.xz  the kernel tests and bench_gpu       carry it, run scripts/gpu-check.sh
#   gpu-bundle-engine.tar.xz   test_gpu_engine_cuda and moe         carry it, run scripts/gpu-check.sh
# It says whether both fit one call beside the tree (then carry both at once), and fails if
# either archive plus the tree exceeds 62 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."

arch="${GPU_ARCH:-90}"
arch="${arch#sm_}"
build="${BUILD_DIR:-build-gpu}"
[[ "$build" != /* ]] || { echo "gpu-build: BUILD_DIR must be relative to the repository root" >&2; exit 1; }
jobs="${JOBS:-$(nproc)}"
max_mib=62        # bundle + tree; the limit is 64 MiB, leave room
max_glibc=2.35    # oldest glibc on a GPU image we expect
nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
[[ -x "$nvcc" ]] || { echo "gpu-build: nvcc not found (set NVCC=/path/to/nvcc)" >&2; exit 1; }

tests=(test_qgemv_cuda test_ops_cuda test_router_cuda test_attention_cuda test_dense_gemm_cuda test_qgemv_grouped_cuda test_vram_cuda)

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOE_CUDA=ON -DMOE_PORTABLE=ON \
  -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="${arch}-real" -DCMAKE_CUDA_RUNTIME_LIBRARY=Static >/dev/null
# The GPU engine test, once it is defined (tests/gpu/CMakeLists.txt).
# (The list is read whole first: grep -q stopping early would fail the pipe under pipefail.)
targets=$(ninja -C "$build" -t targets all)
if grep -qE '(^|/)test_gpu_engine_cuda:' <<<"$targets"; then
  tests+=(test_gpu_engine_cuda)
fi
ninja -C "$build" -j "$jobs" "${tests[@]}" bench_gpu moe

exes=("${tests[@]/#/$build/tests/gpu/}" "$build/bench/bench_gpu" "$build/tools/moe")
for exe in "${exes[@]}"; do
  [[ -x "$exe" ]] || { echo "gpu-build: $exe was not built where expected" >&2; exit 1; }
done
strip --strip-unneeded "${exes[@]}"

# Shared libraries any Linux with a CUDA driver has; anything else must be linked statically.
allowed='^(linux-vdso|libc|libm|libpthread|libdl|librt|libcuda|libcudart|ld-linux-x86-64)\.so'
allowed_cublas='^(libcublas|libcublasLt|libgcc_s)\.so'  # shared on purpose: see the top of this file
bad=0
for exe in "${exes[@]}"; do
  echo "== ldd $exe"
  ldd "$exe" | sed 's/^/   /'
  while read -r lib _; do
    [[ -z "$lib" || "$lib" =~ $allowed || "$lib" =~ $allowed_cublas || "$lib" == /lib64/ld-linux* ]] && continue
    echo "gpu-build: $exe needs $lib, which a bare CUDA image lacks" >&2
    bad=1
  done < <(ldd "$exe" | sed 's/^\s*//')
  # The newest glibc symbol version it needs (libstdc++ is static: its calls count too).
  need=$(objdump -T "$exe" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' | sed 's/GLIBC_//' | sort -uV | tail -1)
  echo "   needs glibc >= ${need:-?}"
  if [[ -n "$need" && "$(printf '%s\n%s\n' "$need" "$max_glibc" | sort -V | tail -1)" != "$max_glibc" ]]; then
    echo "gpu-build: $exe needs glibc $need, newer than $max_glibc:" >&2
    objdump -T "$exe" | grep -E "GLIBC_$need([^.0-9]|$)" | sed 's/^/   /' >&2
    bad=1
  fi
done
[[ $bad == 0 ]] || exit 1

# Two archives, paths kept (build-gpu/tests/gpu/..., build-gpu/bench/..., build-gpu/tools/moe).
rm -f gpu-bundle.tgz gpu-bundle-kernels.tar.xz gpu-bundle-engine.tar.xz  # the one-archive form of before, too
kernel_exes=("$build/bench/bench_gpu") engine_exes=("$build/tools/moe")
for t in "${tests[@]}"; do
  if [[ $t == test_gpu_engine_cuda ]]; then engine_exes+=("$build/tests/gpu/$t"); else kernel_exes+=("$build/tests/gpu/$t"); fi
done
XZ_OPT="-9e -T${jobs}" tar -cJf gpu-bundle-kernels.tar.xz "${kernel_exes[@]}"
XZ_OPT="-9e -T${jobs}" tar -cJf gpu-bundle-engine.tar.xz "${engine_exes[@]}"
# What travels besides: the tracked files and the untracked ones git does not ignore.
tree_b=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -b 2>/dev/null | awk '{s += $1} END {print s + 0}')
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "gpu-build: sm_$arch, $(du -sh "$build" | cut -f1) in $build/; ${#exes[@]} executables, stripped:"
du -b "${exes[@]}" | awk '{printf "   %6.1f MiB  %s\n", $1 / 1048576, $2}'
over=0 both_b=$tree_b
for bundle in gpu-bundle-kernels.tar.xz gpu-bundle-engine.tar.xz; do
  bundle_b=$(stat -c %s "$bundle")
  echo "gpu-build: $bundle $(mib "$bundle_b") + tree $(mib "$tree_b") = $(mib $((bundle_b + tree_b))) (limit $max_mib MiB)"
  (( bundle_b + tree_b <= max_mib * 1048576 )) || over=1
  both_b=$((both_b + bundle_b))
done
# Both in one call saves a machine start where they fit the device tool's 64 MiB.
if (( both_b <= 64 * 1048576 - 262144 )); then
  echo "gpu-build: both archives + tree = $(mib "$both_b"): they fit one device call (carry both)"
else
  echo "gpu-build: both archives + tree = $(mib "$both_b"): over 64 MiB, so one device call per archive"
fi
if (( over )); then
  echo "gpu-build: over the $max_mib MiB that can be carried to the GPU machine in one call" >&2
  exit 1
fi
