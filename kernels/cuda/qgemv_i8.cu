// INT8 GEMV (per-row fp32 scales), 1..8 consecutive tokens per launch: the dense weights of
// `--dense int8` packs, which the GPU engine used to widen to fp32 (4x the bytes a token reads).
// The per-warp body is in qgemv_i8.cuh. K % 16 == 0 (gpu_weights.cpp widens other K).
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_i8.cuh"
#include "kernels/cuda/qgemv_launch.h"

namespace moe::cuda::detail {
namespace {

template <int M, int R>
__global__ void __launch_bounds__(kThreads)
    i8_gemv(const float* __restrict__ x, const uint8_t* __restrict__ w, const float* __restrict__ scales, int N, int K,
            float* __restrict__ y) {
  const int row0 = (blockIdx.x * kWarps + threadIdx.x / 32) * R;
  if (row0 >= N) return;  // whole warp
  i8_rows<M, R>(I8Weights{w, scales, N, K}, row0, threadIdx.x % 32, StridedRows<const float>{x, K},
                StridedRows<float>{y, N});
}

using I8Kernel = void (*)(const float*, const uint8_t*, const float*, int, int, float*);

constexpr I8Kernel kI8Kernels[kQgemvMaxM] = {
    i8_gemv<1, rows_per_warp(1)>, i8_gemv<2, rows_per_warp(2)>, i8_gemv<3, rows_per_warp(3)>,
    i8_gemv<4, rows_per_warp(4)>, i8_gemv<5, rows_per_warp(5)>, i8_gemv<6, rows_per_warp(6)>,
    i8_gemv<7, rows_per_warp(7)>, i8_gemv<8, rows_per_warp(8)>};

}  // namespace

void launch_i8(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  const int N = int(w.rows), K = int(w.cols);
  const int rows_per_block = kWarps * rows_per_warp(M);
  const unsigned grid = unsigned((N + rows_per_block - 1) / rows_per_block);
  kI8Kernels[M - 1]<<<grid, kThreads, 0, stream>>>(x, static_cast<const uint8_t*>(w.data),
                                                  static_cast<const float*>(w.scales), N, K, y);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda::detail
