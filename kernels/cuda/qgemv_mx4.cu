// MXFP4 GEMV (e2m1 values, one e8m0 scale per 32 columns), 1..8 consecutive tokens per launch:
// the per-warp body and its mapping are in qgemv_mx4.cuh. K % 32 == 0 (the format's own rule).
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_launch.h"
#include "kernels/cuda/qgemv_mx4.cuh"

namespace moe::cuda::detail {
namespace {

template <int M, int R>
__global__ void __launch_bounds__(kThreads)
    mx4_gemv(const float* __restrict__ x,        // [M, K]
             const uint8_t* __restrict__ w,      // [N, K / 2]
             const uint8_t* __restrict__ scales, // [N, K / 32]
             int N, int K, float* __restrict__ y) {  // [M, N]
  const int row0 = (blockIdx.x * kWarps + threadIdx.x / 32) * R;
  if (row0 >= N) return;  // whole warp
  mx4_rows<M, R>(Mx4Weights{w, scales, N, K}, row0, threadIdx.x % 32, StridedRows<const float>{x, K},
                 StridedRows<float>{y, N});
}

using Mx4Kernel = void (*)(const float*, const uint8_t*, const uint8_t*, int, int, float*);

constexpr Mx4Kernel kMx4Kernels[kQgemvMaxM] = {
    mx4_gemv<1, rows_per_warp(1)>, mx4_gemv<2, rows_per_warp(2)>, mx4_gemv<3, rows_per_warp(3)>,
    mx4_gemv<4, rows_per_warp(4)>, mx4_gemv<5, rows_per_warp(5)>, mx4_gemv<6, rows_per_warp(6)>,
    mx4_gemv<7, rows_per_warp(7)>, mx4_gemv<8, rows_per_warp(8)>};

}  // namespace

void launch_mx4(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  const int N = int(w.rows), K = int(w.cols);
  const int rows_per_block = kWarps * rows_per_warp(M);
  const unsigned grid = unsigned((N + rows_per_block - 1) / rows_per_block);
  kMx4Kernels[M - 1]<<<grid, kThreads, 0, stream>>>(x, static_cast<const uint8_t*>(w.data),
                                                    static_cast<const uint8_t*>(w.scales), N, K, y);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda::detail
