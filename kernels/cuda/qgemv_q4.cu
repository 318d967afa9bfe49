// INT4 group-wise GEMV (Q4 symmetric, Q4Z with zero points), 1..8 consecutive tokens per
// launch. The per-warp body and its mapping: qgemv_q4.cuh.
#include <cuda_fp16.h>

#include <stdexcept>

#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_launch.h"
#include "kernels/cuda/qgemv_q4.cuh"

namespace moe::cuda::detail {
namespace {

template <int M, int R, bool Asym>
__global__ void __launch_bounds__(kThreads)
    q4_gemv(const float* __restrict__ x,         // [M, K]
            const uint8_t* __restrict__ w,       // [N, K / 2]
            const uint16_t* __restrict__ scales, // [N, K / group] fp16
            const uint8_t* __restrict__ zeros,   // [N, K / group] (Asym only)
            int N, int K, int group,
            float* __restrict__ y) {             // [M, N]
  const int row0 = (blockIdx.x * kWarps + threadIdx.x / 32) * R;
  if (row0 >= N) return;  // whole warp
  q4_rows<M, R, Asym>(Q4Weights{w, scales, zeros, N, K, group}, row0, threadIdx.x % 32,
                      StridedRows<const float>{x, K}, StridedRows<float>{y, N});
}

using Q4Kernel = void (*)(const float*, const uint8_t*, const uint16_t*, const uint8_t*, int, int, int, float*);

// The instantiated configurations: M = 1..8 tokens, symmetric or with zero points.
template <bool Asym>
constexpr Q4Kernel kQ4Kernels[kQgemvMaxM] = {
    q4_gemv<1, rows_per_warp(1), Asym>, q4_gemv<2, rows_per_warp(2), Asym>, q4_gemv<3, rows_per_warp(3), Asym>,
    q4_gemv<4, rows_per_warp(4), Asym>, q4_gemv<5, rows_per_warp(5), Asym>, q4_gemv<6, rows_per_warp(6), Asym>,
    q4_gemv<7, rows_per_warp(7), Asym>, q4_gemv<8, rows_per_warp(8), Asym>};

}  // namespace

void launch_q4(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  const bool asym = w.dtype == DType::Q4Z;
  const Q4Kernel k = asym ? kQ4Kernels<true>[M - 1] : kQ4Kernels<false>[M - 1];
  const int N = int(w.rows), K = int(w.cols);
  const int rows_per_block = kWarps * rows_per_warp(M);
  const unsigned grid = unsigned((N + rows_per_block - 1) / rows_per_block);
  k<<<grid, kThreads, 0, stream>>>(x, static_cast<const uint8_t*>(w.data), static_cast<const uint16_t*>(w.scales),
                                   w.zeros, N, K, int(w.group), y);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda::detail
