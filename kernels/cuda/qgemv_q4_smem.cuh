// Internal: the INT4 (Q4, Q4Z) body of the smem GEMV family (driver and tile: qgemv_smem.cuh),
// shared by qgemv_q4_smem.cu and qgemv_grouped_q4_smem.cu. Mapping as v0 (qgemv_q4.cuh): lane l
// takes 32-column blocks l, l + 32, ... of R rows, one 16-byte load per row and block, so a warp
// step covers 1024 columns; the warp sums its lanes at the end.
//
// Decode, exact (Cfg::Fast false): v0's, (code - zero) as 2^23 + code - (2^23 + zero).
// Decode, fast: a nibble masked in place, (word & 0xf << e) with e in {0, 4, 8, 12} (the top
// half-word shifted down once), read as a float is code * 2^(e - 149), a denormal, exactly; the
// staged activation of that column is x * 2^(96 - e) (fixup), so each product is
// code * x * 2^-53: one AND and one FMA per weight instead of shift, AND/OR, subtract and FMA
// (the FMA pipe takes denormal inputs at full rate; this code is never built with -ftz). The zero
// point leaves the inner loop: sum (code - z) x = sum code x - z * sum x, with sum x per block
// and token computed once per block of threads in the tile. Error: fp32 rounding of sum code x
// (|code| <= 15) instead of sum (code - z) x, ~1e-7 relative; the tests' bound is 1e-4.
#pragma once
#include <cuda_fp16.h>

#include "kernels/cuda/decode.h"
#include "kernels/cuda/decode_fast.h"
#include "kernels/cuda/qgemv_q4.cuh"
#include "kernels/cuda/qgemv_smem.cuh"

namespace moe::cuda::detail {

template <class Cfg, bool Asym>
struct Q4SmemBody {
  static constexpr int R = Cfg::R, D = Cfg::D;
  static constexpr int kStepCols = 32 * 32;
  static constexpr bool kBlockSums = Cfg::Fast;

  const uint8_t* w;  // row0's weights; rows past N re-read row0 (and get scale 0)
  const uint16_t* scales;
  const uint8_t* zeros;
  int row0, nrows, nunits, group_shift, ngroups;  // group = 1 << group_shift (32, 64, 128)
  bool valid;
  uint4 q[D + 1][R];  // register ring: slot t % (D + 1) holds step t
  uint16_t sc[D + 1][R];
  uint8_t zp[D + 1][R];

  __device__ __forceinline__ Q4SmemBody(const Q4Weights& W, int row0_)
      : row0(row0_), nunits(W.K / 32), group_shift(W.group == 32 ? 5 : W.group == 64 ? 6 : 7), ngroups(W.K / W.group) {
    valid = row0 < W.N;
    nrows = valid ? min(R, W.N - row0) : 0;
    const int row = valid ? row0 : 0;
    w = W.w + int64_t(row) * (W.K / 2);
    scales = W.scales + int64_t(row) * ngroups;
    zeros = Asym ? W.zeros + int64_t(row) * ngroups : nullptr;
  }

  __device__ __forceinline__ void load(int step, int slot) {
    const int b = step * 32 + int(threadIdx.x % 32);
    if (!valid || b >= nunits) return;
    const int gi = (b * 32) >> group_shift;
#pragma unroll
    for (int r = 0; r < R; ++r) {  // offsets from row0, not R pointers: registers
      const int rr = r < nrows ? r : 0;
      q[slot][r] = load_weights(w + int64_t(rr) * (nunits * 16) + b * 16);
      sc[slot][r] = __ldg(scales + rr * ngroups + gi);
      if constexpr (Asym) zp[slot][r] = __ldg(zeros + rr * ngroups + gi);
    }
  }

  // Fast: x * 2^(96 - e) in place (e of column 16h + 4j + p is 8 (p % 2) + 4h; slot 4h + j of a
  // block), and after the tile each block's sum x * 2^-53 per token.
  template <int M>
  __device__ __forceinline__ void fixup(float* buf, const TileGeom& g, int c, int K) const {
    const int n4 = min(g.cols, K - c * g.cols) / 4;  // a multiple of 8: blocks are whole
    for (int m = 0; m < M; ++m)
      for (int i0 = 0; i0 < n4; i0 += blockDim.x) {  // uniform trip count: the shuffles need all lanes
        const int i = i0 + int(threadIdx.x);
        float4* p = reinterpret_cast<float4*>(buf + m * g.cols) + swz(i);
        float4 v = i < n4 ? *p : make_float4(0.f, 0.f, 0.f, 0.f);
        float s = (v.x + v.y) + (v.z + v.w);
        s += __shfl_xor_sync(0xffffffffu, s, 1);  // the 8 slots of a block: 8 consecutive threads
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        s += __shfl_xor_sync(0xffffffffu, s, 4);
        if (i < n4) {
          const int c = (4 * i) % 32;  // the block's column of v.x
          v.x *= q4_fast_x_scale(c), v.y *= q4_fast_x_scale(c + 1);
          v.z *= q4_fast_x_scale(c + 2), v.w *= q4_fast_x_scale(c + 3);
          *p = v;
          if (i % 8 == 0) buf[M * g.cols + m * (g.cols / 32) + i / 8] = s * kQ4FastUnit;
        }
      }
  }

  template <int M>
  __device__ __forceinline__ void compute(int slot, int lb, const float* tile, const TileGeom& g,
                                          float (&acc)[M][R]) const {
    float scale[R], zero[R], magic[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      scale[r] = r < nrows ? __half2float(__ushort_as_half(sc[slot][r])) : 0.0f;  // exact, one instruction
      zero[r] = Asym ? float(zp[slot][r]) : 8.0f;
      magic[r] = q4_magic(Asym ? int(zp[slot][r]) : 8);
    }
    float part[M][R] = {};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      uint32_t lo[R], hi[R];  // the word, and its top half shifted down (fast)
#pragma unroll
      for (int r = 0; r < R; ++r) lo[r] = word(q[slot][r], j), hi[r] = q4_fast_half(lo[r], 2);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float d[R][4];  // columns 16h + 4j + 0..3
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
          for (int p = 0; p < 4; ++p) {
            if constexpr (Cfg::Fast) d[r][p] = q4_fast_nibble(p < 2 ? lo[r] : hi[r], p, h);
            else d[r][p] = q4_nibble(lo[r], 8 * p + 4 * h, magic[r]);
          }
        const int s = 8 * lb + ((4 * h + j) ^ (lb & 7));  // swz(8 lb + 4h + j)
#pragma unroll
        for (int m = 0; m < M; ++m) dot4_rows<R>(part[m], d, lds4(tile + m * g.cols, s));
      }
    }
    if constexpr (Cfg::Fast) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float sx = tile[M * g.cols + m * (g.cols / 32) + lb];
#pragma unroll
        for (int r = 0; r < R; ++r)
          acc[m][r] = fmaf(scale[r] * (1.0f / kQ4FastUnit), fmaf(-zero[r], sx, part[m][r]), acc[m][r]);
      }
    } else {
      add_scaled<M, R>(acc, part, scale);
    }
  }
};

}  // namespace moe::cuda::detail
