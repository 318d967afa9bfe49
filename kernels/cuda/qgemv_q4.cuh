// Internal: the INT4 (Q4, Q4Z) GEMV body for one warp's R rows and M tokens, shared by
// qgemv_q4.cu (consecutive tokens) and qgemv_grouped_q4.cu (gathered tokens, one expert each).
//
// Mapping: lane l takes 32-column blocks l, l + 32, ... of the R rows (16 bytes of each row per
// block: one vector load), so a warp reads 512 contiguous bytes of a row per step. Each block
// lies inside one quantization group (group >= 32), so the block's sum is taken over
// (q - zero) * x and scaled once. The warp sums its lanes at the end. Activations come through
// L1/L2 (every warp re-reads x), weights bypass L1.
#pragma once
#include "kernels/cuda/decode.h"
#include "kernels/cuda/qgemv_common.cuh"

namespace moe::cuda::detail {

struct Q4Weights {
  const uint8_t* w;        // [N, K / 2]
  const uint16_t* scales;  // [N, K / group] fp16
  const uint8_t* zeros;    // [N, K / group] (Asym only)
  int N, K, group;
};

// y.row(m)[row0 .. row0 + R) = x.row(m)[0, K) . W[row0 .. row0 + R)^T for m < M; rows >= N are
// skipped. Called by a whole warp (row0 < N) with its lane index.
template <int M, int R, bool Asym, class XRows, class YRows>
__device__ __forceinline__ void q4_rows(const Q4Weights& W, int row0, int lane, const XRows& x, const YRows& y) {
  const int nrows = min(R, W.N - row0);
  const int K = W.K, nblocks = K / 32, ngroups = K / W.group;
  const float* xm[M];  // each token's activations, resolved once (a gather costs an index load)
#pragma unroll
  for (int m = 0; m < M; ++m) xm[m] = x.row(m);

  float acc[M][R] = {};
  for (int b = lane; b < nblocks; b += 32) {
    uint4 q[R];
    float scale[R], magic[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int row = row0 + (r < nrows ? r : 0);  // missing rows re-read row0 and get scale 0
      q[r] = load_weights(W.w + int64_t(row) * (K / 2) + int64_t(b) * 16);
      const int64_t gi = int64_t(row) * ngroups + (b * 32) / W.group;
      scale[r] = r < nrows ? f16_to_f32(__ldg(W.scales + gi)) : 0.0f;
      magic[r] = q4_magic(Asym ? int(__ldg(W.zeros + gi)) : 8);
    }
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
          const float4 xv = load_x4(xm[m] + b * 32 + q4_column(j, 0, h));
          dot4_rows<R>(part[m], d, xv);
        }
      }
    add_scaled<M, R>(acc, part, scale);
  }
  reduce_store<M, R>(acc, lane, row0, nrows, y);
}

}  // namespace moe::cuda::detail
