// FP8 e4m3 GEMV (per-row or 128x128 block fp32 scales), 1..8 tokens per launch.
//
// Vector path (K % 16 == 0): a warp owns R consecutive rows; lane l takes 16-column chunks
// l, l + 32, ... (one 16-byte load per row), so a warp reads 512 contiguous bytes of a row per
// step. A chunk never straddles a 128-column scale block, so its sum is scaled once.
// Other K: rows are not 16-byte aligned, so a simple per-element kernel (one row per warp,
// decoded with quant/dtype.h's f8e4m3_to_f32) does the work; correct, not fast.
#include <stdexcept>

#include "kernels/cuda/check.h"
#include "kernels/cuda/decode.h"
#include "kernels/cuda/qgemv_common.cuh"
#include "kernels/cuda/qgemv_launch.h"

namespace moe::cuda::detail {
namespace {

// The scale of (row, column): one per row (group 0) or per 128x128 block (group 128).
__device__ __forceinline__ float f8_scale(const float* scales, int row, int col, int group, int scale_cols) {
  return group == 0 ? scales[row] : scales[int64_t(row / 128) * scale_cols + col / 128];
}

template <int M, int R>
__global__ void __launch_bounds__(kThreads)
    f8_gemv(const float* __restrict__ x,       // [M, K]
            const uint8_t* __restrict__ w,     // [N, K]
            const float* __restrict__ scales,  // [N] or [ceil(N / 128), ceil(K / 128)]
            int N, int K, int group,
            float* __restrict__ y) {           // [M, N]
  const int lane = threadIdx.x % 32;
  const int row0 = (blockIdx.x * kWarps + threadIdx.x / 32) * R;
  if (row0 >= N) return;  // whole warp
  const int nrows = min(R, N - row0);
  const int nchunks = K / 16, scale_cols = (K + 127) / 128;

  float acc[M][R] = {};
  for (int c = lane; c < nchunks; c += 32) {
    uint4 q[R];
    float scale[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int row = row0 + (r < nrows ? r : 0);  // missing rows re-read row0 and get scale 0
      q[r] = load_weights(w + int64_t(row) * K + int64_t(c) * 16);
      scale[r] = r < nrows ? f8_scale(scales, row, c * 16, group, scale_cols) : 0.0f;
    }
    const float* xb = x + c * 16;
    float part[M][R] = {};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float d[R][4];  // columns 4j + 0..3
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int p = 0; p < 4; ++p) d[r][p] = f8_byte(word(q[r], j), p);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float4 xv = load_x4(xb + int64_t(m) * K + 4 * j);
        dot4_rows<R>(part[m], d, xv);
      }
    }
    add_scaled<M, R>(acc, part, scale);
  }
  reduce_store<M, R>(acc, lane, row0, nrows, N, y);
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
