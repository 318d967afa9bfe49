#!/usr/bin/env bash
# The CUDA tests (tests/gpu) on the CPU, through the CUDA emulator (tests/cuda_emu/README.md), in
# a build folder of its own (BUILD_EMU, default build-emu). The kernel tests by default; ENGINE=1
# adds the GPU engine against the CPU engine on every fixture (it needs the whole project built).
# FILTER (a ctest -R regex) narrows the tests. REVERSE=1 runs them a second time with each block's
# threads in reverse order (MOE_CUDA_EMU_ORDER=reverse), which exposes the shared-memory races the
# first order hides. Exit status: ctest's.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD_EMU:-build-emu}"
jobs="${JOBS:-$(nproc)}"
scripts/install-deps.sh
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOE_CUDA_EMU=ON >/dev/null
targets=(test_cuda_emu test_qgemv_cuda test_ops_cuda test_router_cuda test_attention_cuda test_qgemv_grouped_cuda test_dense_gemm_cuda test_vram_cuda)
[[ "${ENGINE:-0}" == 1 ]] && targets+=(test_gpu_engine_cuda moe)
echo "cuda-emu: building ${targets[*]} in $build"
cmake --build "$build" -j "$jobs" --target "${targets[@]}"
labels=(-L gpu)
# Left out for time (the GPU runs them): the window-and-sinks sweep at 16 and 32 query heads per
# kv head (~2 minutes here, against seconds for the rest of each shape).
skip='WindowAndSinks/d[0-9]+_g(16|32)( |$)'
[[ "${ENGINE:-0}" == 1 ]] || skip="GpuEngine|$skip"
args=(-E "$skip")
[[ -n "${FILTER:-}" ]] && args+=(-R "$FILTER")
# The emulator runs one block at a time on one core: tests run in parallel instead.
ctest --test-dir "$build" "${labels[@]}" "${args[@]}" --output-on-failure -j "$jobs" --timeout 1200
if [[ "${REVERSE:-0}" == 1 ]]; then
  echo "cuda-emu: again, each block's threads last to first"
  MOE_CUDA_EMU_ORDER=reverse ctest --test-dir "$build" "${labels[@]}" "${args[@]}" --output-on-failure -j "$jobs" --timeout 1200
fi
