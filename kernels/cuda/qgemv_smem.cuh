// Internal: the shared-memory activation tile of the smem GEMV family (qgemv_variant.h) and the
// block-level loop that drives a format's body (qgemv_q4_smem.cuh, qgemv_f8_smem.cuh) over K.
//
// Why: in v0 lane l reads the activations of its own 32-column block, so the 32 lanes of one
// float4 load are 128 B apart and touch 32 cache lines (32 L1 wavefronts instead of 4); L1, not
// DRAM, bounded the kernel. Here the block's threads copy x (all M tokens, one K chunk at a time)
// into shared memory with coalesced 16-byte cp.async, and every warp of the block reads that one
// tile. Layout: float4 slot i of a token's chunk is stored at swz(i) = i ^ ((i / 8) % 8), an XOR
// swizzle of each 128-byte row, so the 8 lanes of a quarter-warp that read slot q of 8
// consecutive blocks (Q4: lane l's block is row l) or chunks (F8: two per row) hit 8 distinct
// 16-byte bank groups: conflict-free reads and writes, no padding.
//
// Chunks: a token's chunk is a whole number of warp steps (32 lanes x the body's step columns),
// at most kTileFloats floats for all M tokens, double-buffered when K needs more than one: the
// copy of chunk c + 1 runs while the warps compute chunk c, one __syncthreads per chunk.
// Weights do not go through the tile: each lane prefetches its rows' 16-byte words D steps ahead
// into registers (Body::load), so R * D loads per lane stay in flight across the barriers.
#pragma once
#include "kernels/cuda/qgemv_common.cuh"

namespace moe::cuda::detail {

// One block's configuration: W warps of R rows, weights prefetched D steps ahead, fast decode.
template <int W_, int R_, int D_, bool Fast_>
struct SmemCfg {
  static constexpr int W = W_, R = R_, D = D_, kThreads = 32 * W_;
  static constexpr bool Fast = Fast_;
};

// __launch_bounds__ minimum blocks per SM for M tokens: 2 (<= 128 registers, 16 warps an SM)
// while the body fits; at M > 2 the M x R sums of 4 rows do not, and one block of 255 registers
// is better than spills (those sizes are bound by FMAs, not by bytes in flight).
template <class Cfg>
__host__ __device__ constexpr int min_blocks(int M) {
  return M <= 2 || Cfg::R * M <= 8 ? 2 : 1;
}

// Floats of x per chunk buffer (all tokens): 32 KB, so two buffers leave room for 3 blocks per SM.
inline constexpr int kTileFloats = 8192;

// Chunk geometry for M tokens, K columns, a body of `step_cols` columns per warp step, with
// (Q4 fast) one activation sum per 32-column block and token after the tile.
struct TileGeom {
  int steps_per_chunk, cols, nchunks, buf_floats, bytes;
};
__host__ __device__ inline TileGeom tile_geom(int M, int K, int step_cols, bool block_sums) {
  TileGeom g;
  const int steps = (K + step_cols - 1) / step_cols;
  g.steps_per_chunk = min(steps, max(1, kTileFloats / (M * step_cols)));
  g.cols = g.steps_per_chunk * step_cols;
  g.nchunks = (steps + g.steps_per_chunk - 1) / g.steps_per_chunk;
  g.buf_floats = M * g.cols + (block_sums ? M * (g.cols / 32) : 0);
  g.bytes = (g.nchunks > 1 ? 2 : 1) * g.buf_floats * int(sizeof(float));
  return g;
}

__device__ __forceinline__ int swz(int i) { return i ^ ((i >> 3) & 7); }

__device__ __forceinline__ float4 lds4(const float* tile, int slot) {
  return *reinterpret_cast<const float4*>(tile + 4 * slot);
}

#ifdef MOE_CUDA_EMU  // tests/cuda_emu: the copy happens at once
__device__ __forceinline__ void cp_async16(float* smem, const float* gmem) {
  *reinterpret_cast<float4*>(smem) = *reinterpret_cast<const float4*>(gmem);
}
__device__ __forceinline__ void cp_async_commit() {}
__device__ __forceinline__ void cp_async_wait_all() {}
#else
__device__ __forceinline__ void cp_async16(float* smem, const float* gmem) {
  const unsigned s = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;" ::: "memory"); }
#endif

// Copies columns [c * g.cols, +n) of every token into `buf` (token m at m * g.cols, swizzled).
// Thread t takes float4 slots t, t + nthreads, ...: the same slots fixup() visits.
template <int M>
__device__ __forceinline__ void stage_chunk(float* buf, const float* const (&xm)[M], const TileGeom& g, int c, int K) {
  const int n4 = min(g.cols, K - c * g.cols) / 4;
#pragma unroll
  for (int m = 0; m < M; ++m)
    for (int i = threadIdx.x; i < n4; i += blockDim.x) cp_async16(buf + m * g.cols + 4 * swz(i), xm[m] + c * g.cols + 4 * i);
  cp_async_commit();
}

// The block's loop over K for one warp's body (a whole block calls it: it holds barriers).
// Body: kStepCols, kBlockSums, nunits (per-lane units: 32-column blocks or 16-column chunks),
// valid (the warp has rows), load(step, slot), compute<M>(slot, local_unit, tile, acc) and
// fixup<M>(buf, g, c, K) (the fast variants' in-place rescale of the thread's own slots).
template <int M, class Cfg, class Body, class XRows, class YRows>
__device__ __forceinline__ void smem_gemv(Body& body, int K, const XRows& x, const YRows& y, float* smem) {
  constexpr int D = Cfg::D, R = Cfg::R;
  const TileGeom g = tile_geom(M, K, Body::kStepCols, Body::kBlockSums);
  const float* xm[M];  // each token's activations, resolved once (a gather costs an index load)
#pragma unroll
  for (int m = 0; m < M; ++m) xm[m] = x.row(m);

  float acc[M][R] = {};
  const int nsteps = (body.nunits + 31) / 32;
  stage_chunk<M>(smem, xm, g, 0, K);
#pragma unroll
  for (int d = 0; d < D; ++d)
    if (d < nsteps) body.load(d, d);
  const float* tile = smem;
  int chunk_step0 = 0, c = -1;  // the current chunk and its first step (no divisions in the loop)
  for (int s0 = 0; s0 < nsteps; s0 += D + 1) {
#pragma unroll
    for (int u = 0; u <= D; ++u) {  // slot u of the register ring holds step s0 + u
      const int s = s0 + u;
      if (s >= nsteps) break;
      if (c < 0 || s == chunk_step0 + g.steps_per_chunk) {  // chunk c's copies landed: rescale, publish, start c + 1
        ++c;
        float* buf = smem + (c & 1) * g.buf_floats;
        cp_async_wait_all();
        if constexpr (Cfg::Fast) body.template fixup<M>(buf, g, c, K);
        __syncthreads();  // also: every warp is done with chunk c - 1, whose buffer c + 1 reuses
        if (c + 1 < g.nchunks) stage_chunk<M>(smem + ((c + 1) & 1) * g.buf_floats, xm, g, c + 1, K);
        tile = buf;
        chunk_step0 = s;
      }
      if (s + D < nsteps) body.load(s + D, (u + D) % (D + 1));
      const int local = (s - chunk_step0) * 32 + threadIdx.x % 32;
      if (body.valid && s * 32 + threadIdx.x % 32 < body.nunits) body.template compute<M>(u, local, tile, g, acc);
    }
  }
  if (body.valid) reduce_store<M, R>(acc, threadIdx.x % 32, body.row0, body.nrows, y);
}

}  // namespace moe::cuda::detail
