#!/usr/bin/env bash
# Build the CUDA kernel tests and benchmark into build-gpu/, a folder that can be copied to a GPU
# machine with only the CUDA driver on it (no Debian -dev packages, no network) and run there by
# scripts/gpu-check.sh. Runs on the build machine (nvcc needed, no GPU needed).
#
#   scripts/gpu-build.sh                 # sm_90 (H100/H200)
#   GPU_ARCH=89 scripts/gpu-build.sh     # another architecture (80, 86, 89, 90, 120; "sm_" optional)
#   JOBS=1 scripts/gpu-build.sh          # parallel jobs (default: all cores)
#
# Only the GPU tests (tests/gpu: the test_*_cuda targets below) and bench_gpu are
# built. They link cudart, gtest and libstdc++/libgcc statically, so `ldd` shows nothing beyond
# libc/libm/libpthread/libdl/librt and the loader; this script checks that, and that the folder
# stays under 64 MiB (what the GPU machine accepts).
#
# Exception, cuBLAS (test_dense_gemm_cuda and bench_gpu, through kernels/cuda/dense_gemm.h):
# linked as a shared library. This toolkit ships no libcublas_static.a / libcublasLt_static.a,
# and libcublasLt alone is ~540 MB, far over the 64 MiB folder, so it cannot travel either. The
# GPU machine has the CUDA toolkit (libcublas.so.13, libcublasLt.so.13): the executables find it
# through the toolkit RUNPATH CMake records, else scripts/gpu-check.sh puts its lib64 on
# LD_LIBRARY_PATH. So libcublas, libcublasLt and their libgcc_s are allowed by the ldd check.
set -euo pipefail
cd "$(dirname "$0")/.."

arch="${GPU_ARCH:-90}"
arch="${arch#sm_}"
build="${BUILD_DIR:-build-gpu}"
jobs="${JOBS:-$(nproc)}"
max_mib=64
nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
[[ -x "$nvcc" ]] || { echo "gpu-build: nvcc not found (set NVCC=/path/to/nvcc)" >&2; exit 1; }
targets=(test_qgemv_cuda test_ops_cuda test_attention_cuda bench_gpu)
targets+=(test_dense_gemm_cuda)
targets+=(test_qgemv_grouped_cuda)
targets+=(test_vram_cuda)

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOE_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCMAKE_CUDA_RUNTIME_LIBRARY=Static >/dev/null
ninja -C "$build" -j "$jobs" "${targets[@]}"

exes=("$build/tests/gpu/test_qgemv_cuda" "$build/tests/gpu/test_ops_cuda" "$build/tests/gpu/test_attention_cuda"
      "$build/bench/bench_gpu")
exes+=("$build/tests/gpu/test_dense_gemm_cuda")
exes+=("$build/tests/gpu/test_qgemv_grouped_cuda")
exes+=("$build/tests/gpu/test_vram_cuda")
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
done
[[ $bad == 0 ]] || exit 1

size_mib=$(du -sm "$build" | cut -f1)
echo "gpu-build: sm_$arch, $(du -sh "$build" | cut -f1) in $build/"
if (( size_mib > max_mib )); then
  echo "gpu-build: $build/ is $size_mib MiB, over the $max_mib MiB that can be carried to the GPU machine" >&2
  exit 1
fi
