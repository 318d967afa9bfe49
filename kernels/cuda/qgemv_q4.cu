// INT4 group-wise GEMV (Q4 symmetric, Q4Z with zero points), 1..8 tokens per launch.
//
// Mapping: a warp owns R consecutive output rows; lane l takes 32-column blocks l, l + 32, ...
// of those rows (16 bytes of each row per block: one vector load), so a warp reads 512
// contiguous bytes of a row per step. Each block lies inside one quantization group (group
// >= 32), so the block's sum is taken over (q - zero) * x and scaled once. The warp sums its
// lanes at the end. Activations come through L1/L2 (every warp re-reads x), weights bypass L1.
#include <cuda_fp16.h>

#include <stdexcept>

#include "kernels/cuda/check.h"
#include "kernels/cuda/decode.h"
#include "kernels/cuda/qgemv_common.cuh"
#include "kernels/cuda/qgemv_launch.h"

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
  const int lane = threadIdx.x % 32;
  const int row0 = (blockIdx.x * kWarps + threadIdx.x / 32) * R;
  if (row0 >= N) return;  // whole warp
  const int nrows = min(R, N - row0);
  const int nblocks = K / 32, ngroups = K / group;

  float acc[M][R] = {};
  for (int b = lane; b < nblocks; b += 32) {
    uint4 q[R];
    float scale[R], magic[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int row = row0 + (r < nrows ? r : 0);  // missing rows re-read row0 and get scale 0
      q[r] = load_weights(w + int64_t(row) * (K / 2) + int64_t(b) * 16);
      const int64_t gi = int64_t(row) * ngroups + (b * 32) / group;
      scale[r] = r < nrows ? f16_to_f32(scales[gi]) : 0.0f;
      magic[r] = q4_magic(Asym ? int(zeros[gi]) : 8);
    }
    const float* xb = x + b * 32;
    float part[M][R] = {};
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float d[R][4];  // (q - zero) of columns 16h + 4j + 0..3
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int p = 0; p < 4; ++p) d[r][p] = q4_nibble(word(q[r], j), 8 * p + 4 * h, magic[r]);
#pragma unroll
        for (int m = 0; m < M; ++m) {
          const float4 xv = load_x4(xb + int64_t(m) * K + q4_column(j, 0, h));
          dot4_rows<R>(part[m], d, xv);
        }
      }
    add_scaled<M, R>(acc, part, scale);
  }
  reduce_store<M, R>(acc, lane, row0, nrows, N, y);
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
