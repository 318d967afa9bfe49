// Internal: the FP8 e4m3 body (K % 16 == 0) of the smem GEMV family (driver and tile:
// qgemv_smem.cuh), shared by qgemv_f8_smem.cu and qgemv_grouped_f8_smem.cu. Mapping as v0
// (qgemv_f8.cuh): lane l takes 16-column chunks l, l + 32, ... of R rows, one 16-byte load per
// row and chunk, so a warp step covers 512 columns.
//
// Decode, exact (Cfg::Fast false): decode.h's f8_byte, as v0. Fast: f8_byte without its final
// multiply by 2^120; the staged activations are x * 2^64 instead (fixup) and the scale is
// multiplied by 2^56, so every product and partial sum is v0's times 2^-56, rounding included
// (powers of two, far from fp32's range ends for |x| < 2^64).
#pragma once
#include "kernels/cuda/decode.h"
#include "kernels/cuda/decode_fast.h"
#include "kernels/cuda/qgemv_f8.cuh"
#include "kernels/cuda/qgemv_smem.cuh"

namespace moe::cuda::detail {

template <class Cfg>
struct F8SmemBody {
  static constexpr int R = Cfg::R, D = Cfg::D;
  static constexpr int kStepCols = 32 * 16;
  static constexpr bool kBlockSums = false;

  const uint8_t* w;  // row0's weights; rows past N re-read row0 (and get scale 0)
  const float* scales;
  int row0, nrows, nunits, group, scale_cols;
  bool valid;
  uint4 q[D + 1][R];   // register ring: slot t % (D + 1) holds step t
  float sc[D + 1][R];  // 128x128 block scales of the step (group 128)
  float row_scale[R];  // per-row scales (group 0)

  __device__ __forceinline__ F8SmemBody(const F8Weights& W, int row0_)
      : scales(W.scales), row0(row0_), group(W.group), scale_cols((W.K + 127) / 128) {
    valid = row0 < W.N;
    nrows = valid ? min(R, W.N - row0) : 0;
    nunits = W.K / 16;
    w = W.w + int64_t(valid ? row0 : 0) * W.K;
#pragma unroll
    for (int r = 0; r < R; ++r) row_scale[r] = valid && group == 0 ? __ldg(scales + row0 + (r < nrows ? r : 0)) : 0.0f;
  }

  __device__ __forceinline__ void load(int step, int slot) {
    const int c = step * 32 + int(threadIdx.x % 32);
    if (!valid || c >= nunits) return;
#pragma unroll
    for (int r = 0; r < R; ++r) {  // offsets from row0, not R pointers: registers
      q[slot][r] = load_weights(w + int64_t(r < nrows ? r : 0) * (nunits * 16) + c * 16);
      if (group != 0) sc[slot][r] = f8_scale(scales, row0 + (r < nrows ? r : 0), c * 16, group, scale_cols);
    }
  }

  // Fast: x * 2^64 in place.
  template <int M>
  __device__ __forceinline__ void fixup(float* buf, const TileGeom& g, int c, int K) const {
    const int n4 = min(g.cols, K - c * g.cols) / 4;
    for (int m = 0; m < M; ++m)
      for (int i = threadIdx.x; i < n4; i += blockDim.x) {
        float4* p = reinterpret_cast<float4*>(buf + m * g.cols) + swz(i);
        float4 v = *p;
        v.x *= kF8FastXScale, v.y *= kF8FastXScale, v.z *= kF8FastXScale, v.w *= kF8FastXScale;
        *p = v;
      }
  }

  template <int M>
  __device__ __forceinline__ void compute(int slot, int lc, const float* tile, const TileGeom& g,
                                          float (&acc)[M][R]) const {
    float scale[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float s = group == 0 ? row_scale[r] : sc[slot][r];
      scale[r] = r < nrows ? (Cfg::Fast ? s * (1.0f / kF8FastUnit) : s) : 0.0f;
    }
    float part[M][R] = {};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float d[R][4];  // columns 4j + 0..3
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int p = 0; p < 4; ++p) {
          const uint32_t w = word(q[slot][r], j);
          if constexpr (Cfg::Fast) d[r][p] = f8_fast_byte(w, p);
          else d[r][p] = f8_byte(w, p);
        }
      const int s = 4 * lc + j;
#pragma unroll
      for (int m = 0; m < M; ++m) dot4_rows<R>(part[m], d, lds4(tile + m * g.cols, swz(s)));
    }
    add_scaled<M, R>(acc, part, scale);
  }
};

}  // namespace moe::cuda::detail
