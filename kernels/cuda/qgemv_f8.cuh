// Internal: the FP8 e4m3 GEMV body (vector path, K % 16 == 0) for one warp's R rows and M
// tokens, shared by qgemv_f8.cu (consecutive tokens) and qgemv_grouped_f8.cu (gathered tokens),
// and with an INT8 decoder by qgemv_i8.cu.
//
// Mapping: lane l takes 16-column chunks l, l + 32, ... of the R rows (one 16-byte load per
// row), so a warp reads 512 contiguous bytes of a row per step. A chunk never straddles a
// 128-column scale block, so its sum is scaled once.
#pragma once
#include "kernels/cuda/decode.h"
#include "kernels/cuda/qgemv_common.cuh"
#include "kernels/cuda/qgemv_grouped_launch.h"

namespace moe::cuda::detail {

struct F8Weights {
  const uint8_t* w;      // [N, K]
  const float* scales;   // [N] (group 0) or [ceil(N / 128), ceil(K / 128)] (group 128)
  int N, K, group;
};

// The scale of (row, column): one per row (group 0) or per 128x128 block (group 128).
__device__ __forceinline__ float f8_scale(const float* scales, int row, int col, int group, int scale_cols) {
  return __ldg(group == 0 ? scales + row : scales + int64_t(row / 128) * scale_cols + col / 128);
}

// The byte decoders of the one-byte-per-weight formats that share this body.
struct F8Byte {
  static __device__ __forceinline__ float at(uint32_t word, int p) { return f8_byte(word, p); }
};
struct I8Byte {  // INT8 rows (`--dense int8`): per-row fp32 scales, as F8Weights' group 0
  static __device__ __forceinline__ float at(uint32_t word, int p) { return i8_byte(word, p); }
};

// y.row(m)[row0 .. row0 + R) = x.row(m)[0, K) . W[row0 .. row0 + R)^T for m < M; rows >= N are
// skipped. Called by a whole warp (row0 < N) with its lane index; K % 16 == 0. Byte: the code's
// decoder (F8Byte, or I8Byte with group 0).
template <int M, int R, class Byte = F8Byte, class XRows, class YRows>
__device__ __forceinline__ void f8_rows(const F8Weights& W, int row0, int lane, const XRows& x, const YRows& y) {
  const int nrows = min(R, W.N - row0);
  const int K = W.K, nchunks = K / 16, scale_cols = (K + 127) / 128;
  const float* xm[M];  // each token's activations, resolved once (a gather costs an index load)
#pragma unroll
  for (int m = 0; m < M; ++m) xm[m] = x.row(m);

  float acc[M][R] = {};
  for (int c = lane; c < nchunks; c += 32) {
    uint4 q[R];
    float scale[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int row = row0 + (r < nrows ? r : 0);  // missing rows re-read row0 and get scale 0
      q[r] = load_weights(W.w + int64_t(row) * K + int64_t(c) * 16);
      scale[r] = r < nrows ? f8_scale(W.scales, row, c * 16, W.group, scale_cols) : 0.0f;
    }
    float part[M][R] = {};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float d[R][4];  // columns 4j + 0..3
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int p = 0; p < 4; ++p) d[r][p] = Byte::at(word(q[r], j), p);
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float4 xv = load_x4(xm[m] + c * 16 + 4 * j);
        dot4_rows<R>(part[m], d, xv);
      }
    }
    add_scaled<M, R>(acc, part, scale);
  }
  reduce_store<M, R>(acc, lane, row0, nrows, y);
}

// The body as a format of the grouped kernel (qgemv_grouped_f8.cu) and of qgemv_fmt.cuh's
// launcher (qgemv_i8.cu): ByteFmt<F8Byte> is FP8, ByteFmt<I8Byte> INT8 (its group is 0).
template <class Byte>
struct ByteFmt {
  template <int M, int R, class XRows, class YRows>
  static __device__ __forceinline__ void rows(const GroupedDesc& e, const GroupedLaunch& a, int row0, int lane,
                                              const XRows& x, const YRows& y) {
    const F8Weights w{e.data, static_cast<const float*>(e.scales), a.N, a.K, a.group};
    f8_rows<M, R, Byte>(w, row0, lane, x, y);
  }
};

}  // namespace moe::cuda::detail
