// Internal: the INT8 GEMV body (dense weights of `--dense int8` packs: codes with one fp32 scale
// per row) for one warp's R rows and M tokens; qgemv_i8.cu launches it.
//
// Mapping: as the FP8 body's, lane l takes 16-column chunks l, l + 32, ... of the R rows (one
// 16-byte load per row). The row's scale multiplies its sum once at the end. Activations stay
// fp32 (the CPU's int8 kernels quantize them; here each product is exact).
// Written without a GPU at hand: correct first.
#pragma once
#include "kernels/cuda/decode.h"
#include "kernels/cuda/qgemv_common.cuh"

namespace moe::cuda::detail {

struct I8Weights {
  const uint8_t* w;      // [N, K] int8 codes
  const float* scales;   // [N]
  int N, K;
};

// y.row(m)[row0 .. row0 + R) = x.row(m) . W[row0 .. row0 + R)^T for m < M; rows >= N skipped.
// Called by a whole warp (row0 < N); K % 16 == 0.
template <int M, int R, class XRows, class YRows>
__device__ __forceinline__ void i8_rows(const I8Weights& W, int row0, int lane, const XRows& x, const YRows& y) {
  const int nrows = min(R, W.N - row0);
  const int K = W.K, nchunks = K / 16;
  const float* xm[M];
#pragma unroll
  for (int m = 0; m < M; ++m) xm[m] = x.row(m);
  float acc[M][R] = {};
  for (int c = lane; c < nchunks; c += 32) {
    uint4 q[R];
#pragma unroll
    for (int r = 0; r < R; ++r) q[r] = load_weights(W.w + int64_t(row0 + (r < nrows ? r : 0)) * K + int64_t(c) * 16);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float d[R][4];  // columns 4j + 0..3
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int p = 0; p < 4; ++p) d[r][p] = i8_byte(word(q[r], j), p);
#pragma unroll
      for (int m = 0; m < M; ++m) dot4_rows<R>(acc[m], d, load_x4(xm[m] + c * 16 + 4 * j));
    }
  }
  float scale[R];
#pragma unroll
  for (int r = 0; r < R; ++r) scale[r] = r < nrows ? __ldg(W.scales + row0 + r) : 0.0f;
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < R; ++r) acc[m][r] *= scale[r];
  reduce_store<M, R>(acc, lane, row0, nrows, y);
}

}  // namespace moe::cuda::detail
