// FP8 e4m3 GEMV (per-row or 128x128 block fp32 scales), 1..8 consecutive tokens per launch.
//
// Vector path (K % 16 == 0): the per-warp body and its mapping are in qgemv_f8.cuh.
// Other K: rows are not 16-byte aligned, so a simple per-element kernel (one row per warp,
// decoded with quant/dtype.h's f8e4m3_to_f32) does the work; correct, not fast.
#include <stdexcept>

#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_f8.cuh"
#include "kernels/cuda/qgemv_launch.h"

namespace moe::cuda::detail {
namespace {

template <int M, int R>
__global__ void __launch_bounds__(kThreads)
    f8_gemv(const float* __restrict__ x,       // [M, K]
            const uint8_t* __restrict__ w,     // [N, K]
            const float* __restrict__ scales,  // [N] or [ceil(N / 128), ceil(K / 128)]
            int N, int K, int group,
            float* __restrict__ y) {           // [M, N]
  const int row0 = (blockIdx.x * kWarps + threadIdx.x / 32) * R;
  if (row0 >= N) return;  // whole warp
  f8_rows<M, R>(F8Weights{w, scales, N, K, group}, row0, threadIdx.x % 32, StridedRows<const float>{x, K},
                StridedRows<float>{y, N});
}

// Any K: one row per warp, lanes stride over columns, M tokens at run time (<= kQgemvMaxM).
__global__ void __launch_bounds__(kThreads)
    f8_gemv_any_k(const float* __restrict__ x, int M, const uint8_t* __restrict__ w, const float* __restrict__ scales,
                  int N, int K, int group, float* __restrict__ y) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * kWarps + threadIdx.x / 32;
  if (row >= N) return;
  const int scale_cols = (K + 127) / 128;
  float acc[kQgemvMaxM] = {};
  for (int k = lane; k < K; k += 32) {
    const float v = f8e4m3_to_f32(w[int64_t(row) * K + k]) * f8_scale(scales, row, k, group, scale_cols);
#pragma unroll
    for (int m = 0; m < kQgemvMaxM; ++m)
      if (m < M) acc[m] = fmaf(v, x[int64_t(m) * K + k], acc[m]);
  }
#pragma unroll
  for (int m = 0; m < kQgemvMaxM; ++m) {
    const float s = warp_sum(acc[m]);
    if (lane == 0 && m < M) y[int64_t(m) * N + row] = s;
  }
}

using F8Kernel = void (*)(const float*, const uint8_t*, const float*, int, int, int, float*);

// The instantiated configurations of the vector path: M = 1..8 tokens.
constexpr F8Kernel kF8Kernels[kQgemvMaxM] = {
    f8_gemv<1, rows_per_warp(1)>, f8_gemv<2, rows_per_warp(2)>, f8_gemv<3, rows_per_warp(3)>,
    f8_gemv<4, rows_per_warp(4)>, f8_gemv<5, rows_per_warp(5)>, f8_gemv<6, rows_per_warp(6)>,
    f8_gemv<7, rows_per_warp(7)>, f8_gemv<8, rows_per_warp(8)>};

}  // namespace

void launch_f8(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  const int N = int(w.rows), K = int(w.cols);
  const uint8_t* data = static_cast<const uint8_t*>(w.data);
  const float* scales = static_cast<const float*>(w.scales);
  if (K % 16 == 0) {
    const int rows_per_block = kWarps * rows_per_warp(M);
    const unsigned grid = unsigned((N + rows_per_block - 1) / rows_per_block);
    kF8Kernels[M - 1]<<<grid, kThreads, 0, stream>>>(x, data, scales, N, K, int(w.group), y);
  } else {
    const unsigned grid = unsigned((N + kWarps - 1) / kWarps);
    f8_gemv_any_k<<<grid, kThreads, 0, stream>>>(x, M, data, scales, N, K, int(w.group), y);
  }
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda::detail
