// Internal device helpers shared by the GEMV kernels (qgemv_q4.cu, qgemv_f8.cu).
#pragma once
#include "kernels/cuda/warp.cuh"
#include <cuda_runtime.h>

#include <cstdint>

namespace moe::cuda::detail {

// 16 weight bytes, read once per launch: the read-only path, not kept in L1 (which then holds
// the activations that every row re-reads).
__device__ __forceinline__ uint4 load_weights(const uint8_t* p) {
#ifdef MOE_CUDA_EMU  // tests/cuda_emu: a plain load
  return *reinterpret_cast<const uint4*>(p);
#else
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
#endif
}

// Word j (0..3) of a 16-byte load; j is a compile-time constant after unrolling.
__device__ __forceinline__ uint32_t word(const uint4& v, int j) {
  return j == 0 ? v.x : j == 1 ? v.y : j == 2 ? v.z : v.w;
}

__device__ __forceinline__ float4 load_x4(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }

// Where token m (0..M-1) of a GEMV pass reads x and writes y: consecutive rows (qgemv) or
// gathered / scattered rows named by an index list (qgemv_grouped). The bodies only call row(m).
template <class T>
struct StridedRows {
  T* base;
  int64_t stride;  // elements per row
  __device__ __forceinline__ T* row(int m) const { return base + int64_t(m) * stride; }
};
template <class T>
struct IndexedRows {
  T* base;
  const int32_t* rows;  // [M] row indices into base
  int64_t stride;
  __device__ __forceinline__ T* row(int m) const { return base + int64_t(__ldg(rows + m)) * stride; }
};

// Sums acc[M][R] over the warp and writes y.row(m)[row0 + r] for the rows that exist; lane
// m * R + r does the store (M * R <= 32).
template <int M, int R, class YRows>
__device__ __forceinline__ void reduce_store(float (&acc)[M][R], int lane, int row0, int nrows, const YRows& y) {
  static_assert(M * R <= 32, "one lane per output");
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float v = warp_sum(acc[m][r]);
      if (lane == m * R + r && r < nrows) y.row(m)[row0 + r] = v;
    }
}

// Rows per warp for M tokens: more rows let each activation load serve more weights, fewer
// rows leave more warps for small N. (Chosen on paper; tune on the GPU.)
__host__ __device__ constexpr int rows_per_warp(int M) { return M <= 2 ? 2 : 4; }

// part[r] += d[r][0..3] . (xv.x, xv.y, xv.z, xv.w) for R weight rows and one token's four
// activations: the inner step both formats share once their weights are decoded.
template <int R>
__device__ __forceinline__ void dot4_rows(float (&part)[R], const float (&d)[R][4], float4 xv) {
#pragma unroll
  for (int r = 0; r < R; ++r) {
    float s = part[r];
    s = fmaf(d[r][0], xv.x, s);
    s = fmaf(d[r][1], xv.y, s);
    s = fmaf(d[r][2], xv.z, s);
    part[r] = fmaf(d[r][3], xv.w, s);
  }
}

// acc[m][r] += scale[r] * part[m][r]: a scale group's partial sums into the totals.
template <int M, int R>
__device__ __forceinline__ void add_scaled(float (&acc)[M][R], const float (&part)[M][R], const float (&scale)[R]) {
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < R; ++r) acc[m][r] = fmaf(scale[r], part[m][r], acc[m][r]);
}

}  // namespace moe::cuda::detail
