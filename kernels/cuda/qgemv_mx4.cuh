// Internal: the MXFP4 GEMV body (gpt-oss's experts as shipped) for one warp's R rows and M tokens,
// shared by qgemv_mx4.cu (consecutive tokens) and qgemv_grouped_mx4.cu (gathered tokens).
//
// Mapping: lane l takes 32-column blocks l, l + 32, ... of the R rows (one 16-byte load and one
// e8m0 scale byte per row), so a warp reads 512 contiguous bytes of a row per step. A block's
// e2m1 values are exact in fp32; its sum is scaled once, as the F8 body scales a chunk.
// Written without a GPU at hand (the v0 form only; every variant runs it): correct first.
#pragma once
#include "kernels/cuda/decode.h"
#include "kernels/cuda/qgemv_common.cuh"
#include "kernels/cuda/qgemv_grouped_launch.h"

namespace moe::cuda::detail {

struct Mx4Weights {
  const uint8_t* w;       // [N, K / 2]
  const uint8_t* scales;  // [N, K / 32] e8m0
  int N, K;
};

// y.row(m)[row0 .. row0 + R) = x.row(m)[0, K) . W[row0 .. row0 + R)^T for m < M; rows >= N are
// skipped. Called by a whole warp (row0 < N) with its lane index; K % 32 == 0.
template <int M, int R, class XRows, class YRows>
__device__ __forceinline__ void mx4_rows(const Mx4Weights& W, int row0, int lane, const XRows& x, const YRows& y) {
  const int nrows = min(R, W.N - row0);
  const int K = W.K, nblocks = K / 32;
  const float* xm[M];
#pragma unroll
  for (int m = 0; m < M; ++m) xm[m] = x.row(m);

  float acc[M][R] = {};
  for (int b = lane; b < nblocks; b += 32) {
    uint4 q[R];
    float scale[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int row = row0 + (r < nrows ? r : 0);  // missing rows re-read row0 and get scale 0
      q[r] = load_weights(W.w + int64_t(row) * (K / 2) + int64_t(b) * 16);
      scale[r] = r < nrows ? e8m0_to_f32(__ldg(W.scales + int64_t(row) * nblocks + b)) : 0.0f;
    }
    float part[M][R] = {};
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float d[R][4];  // columns 8j + 4h + 0..3
#pragma unroll
        for (int r = 0; r < R; ++r) mx4_quad(word(q[r], j), h, d[r]);
#pragma unroll
        for (int m = 0; m < M; ++m) {
          const float4 xv = load_x4(xm[m] + b * 32 + 8 * j + 4 * h);
          dot4_rows<R>(part[m], d, xv);
        }
      }
    add_scaled<M, R>(acc, part, scale);
  }
  reduce_store<M, R>(acc, lane, row0, nrows, y);
}

// The body as a format of the grouped kernel (qgemv_grouped_mx4.cu) and of qgemv_fmt.cuh's launcher.
struct Mx4Fmt {
  template <int M, int R, class XRows, class YRows>
  static __device__ __forceinline__ void rows(const GroupedDesc& e, const GroupedLaunch& a, int row0, int lane,
                                              const XRows& x, const YRows& y) {
    const Mx4Weights w{e.data, static_cast<const uint8_t*>(e.scales), a.N, a.K};
    mx4_rows<M, R>(w, row0, lane, x, y);
  }
};

}  // namespace moe::cuda::detail
