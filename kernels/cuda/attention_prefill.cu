// Prefill attention: T query tokens of one sequence after `prefix` cached ones, causal.
// One block per (tile of kRows query tokens, query head); the keys 0 .. last query's position are
// walked in tiles of kKeys = 32 staged in shared memory, with an online softmax per query row
// (running max m, running sum l, output rescaled by exp(m_old - m_new) when m grows).
// Lane j of a warp scores key j of the tile; lane d owns output columns d, d + 32, ...
// A sliding window starts each row at its own first key and the walk at the block's first; a
// head's sink joins each row's sum at the end (the max rescaled to cover it).
// Correctness first, NOT tuned: no tensor cores, K/V re-read by every query head of a group.
#include "kernels/cuda/warp.cuh"
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention_launch.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_launch.h"  // allow_dynamic_smem

namespace moe::cuda::detail {
namespace {

constexpr int kKeys = 32;                          // keys per tile: one per lane
constexpr int kWarps = kAttnThreads / 32;
constexpr int kRowsPerWarp = 4;
constexpr int kRows = kWarps * kRowsPerWarp;       // query tokens per block

struct PrefillParams {
  int n_heads, group, T;
  int prefix;
  int64_t kv_stride;
  float scale;
  int window;          // 0: none
  const float* sinks;  // [n_heads] or null
  const float* q;  // [T, n_heads, D]
  const float* k;  // [prefix + T, kv_stride]
  const float* v;
  float* out;      // [T, n_heads, D]
};

template <int D>
__global__ void __launch_bounds__(kAttnThreads) prefill_kernel(PrefillParams p) {
  constexpr int E = (D + 31) / 32;  // output columns per lane (D = 16: lanes 16..31 hold none)
  // Ks rows padded by one float: lane j reading Ks[j][d] hits bank (j * (D + 1) + d) % 32, all distinct.
  // Dynamic (launch()'s smem): at D = 256 the three tiles take 81 KB, over the static 48 KB.
  extern __shared__ float psm[];
  float(*Qs)[D] = reinterpret_cast<float(*)[D]>(psm);                                // [kRows][D]
  float(*Ks)[D + 1] = reinterpret_cast<float(*)[D + 1]>(psm + kRows * D);             // [kKeys][D + 1]
  float(*Vs)[D] = reinterpret_cast<float(*)[D]>(psm + kRows * D + kKeys * (D + 1));   // [kKeys][D]

  const int h = blockIdx.y, kvh = h / p.group, q0 = blockIdx.x * kRows;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int rows = min(kRows, p.T - q0);
  const int kend = p.prefix + q0 + rows;  // keys 0 .. kend-1 are visible to some row of this block

  for (int i = tid; i < kRows * D; i += kAttnThreads) {
    const int r = i / D, d = i % D;
    Qs[r][d] = r < rows ? p.q[(int64_t(q0 + r) * p.n_heads + h) * D + d] : 0.0f;
  }

  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][E];
#pragma unroll
  for (int j = 0; j < kRowsPerWarp; ++j) {
    m[j] = -INFINITY, l[j] = 0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) acc[j][e] = 0.0f;
  }

  const float* kb = p.k + int64_t(kvh) * D;
  const float* vb = p.v + int64_t(kvh) * D;
  // The first tile holding a key some row of the block sees (its first row's first key).
  const int kfirst = first_key(p.prefix + q0, p.window) / kKeys * kKeys;
  for (int kt = kfirst; kt < kend; kt += kKeys) {
    __syncthreads();  // the previous tile is consumed (and Qs written, the first time)
    for (int i = tid; i < kKeys * D; i += kAttnThreads) {
      const int j = i / D, d = i % D;
      const bool in = kt + j < kend;
      Ks[j][d] = in ? kb[int64_t(kt + j) * p.kv_stride + d] : 0.0f;
      Vs[j][d] = in ? vb[int64_t(kt + j) * p.kv_stride + d] : 0.0f;
    }
    __syncthreads();

#pragma unroll
    for (int j = 0; j < kRowsPerWarp; ++j) {
      const int r = warp * kRowsPerWarp + j;
      const int pos = p.prefix + q0 + r;  // this row's own position: keys first .. pos
      const int first = first_key(pos, p.window);
      // Warp-uniform: nothing of this tile is visible. Otherwise some key of it is.
      if (r >= rows || kt > pos || kt + kKeys <= first) continue;
      const int t = kt + lane;
      const bool seen = t >= first && t <= pos;
      float s = -INFINITY;
      if (seen) {
        float dot = 0.0f;
#pragma unroll 8
        for (int d = 0; d < D; ++d) dot += Qs[r][d] * Ks[lane][d];
        s = dot * p.scale;
      }
      const float m_new = fmaxf(m[j], warp_max(s));  // finite: key kt <= pos is in the tile
      const float corr = expf(m[j] - m_new);         // 0 on the first tile (m = -inf)
      const float pr = seen ? expf(s - m_new) : 0.0f;
      l[j] = l[j] * corr + warp_sum(pr);
      m[j] = m_new;
#pragma unroll
      for (int e = 0; e < E; ++e) acc[j][e] *= corr;
      for (int jj = 0; jj < kKeys; ++jj) {
        const float w = __shfl_sync(0xffffffffu, pr, jj);
#pragma unroll
        for (int e = 0; e < E; ++e)
          if (lane + 32 * e < D) acc[j][e] += w * Vs[jj][lane + 32 * e];
      }
    }
  }

#pragma unroll
  for (int j = 0; j < kRowsPerWarp; ++j) {
    const int r = warp * kRowsPerWarp + j;
    if (r >= rows) continue;
    float* o = p.out + (int64_t(q0 + r) * p.n_heads + h) * D;
    float corr = 1.0f, lj = l[j];
    if (p.sinks) {  // the sink's mass joins the sum: max and sum rescaled to cover it
      const float sink = p.sinks[h], M = fmaxf(m[j], sink);
      corr = expf(m[j] - M);
      lj = lj * corr + expf(sink - M);
    }
#pragma unroll
    for (int e = 0; e < E; ++e)
      if (lane + 32 * e < D) o[lane + 32 * e] = acc[j][e] * corr / lj;
  }
}

template <int D>
void launch(const PrefillParams& p, cudaStream_t stream) {
  const dim3 grid(unsigned((p.T + kRows - 1) / kRows), unsigned(p.n_heads));
  constexpr int smem = int(sizeof(float)) * (kRows * D + kKeys * (D + 1) + kKeys * D);
  allow_dynamic_smem(reinterpret_cast<const void*>(prefill_kernel<D>), smem);
  prefill_kernel<D><<<grid, kAttnThreads, smem, stream>>>(p);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_prefill(const AttentionShape& s, const float* q, const float* k, const float* v, int64_t prefix, int64_t T,
                    float* out, cudaStream_t stream) {
  PrefillParams p{};
  p.n_heads = s.n_heads, p.group = s.n_heads / s.n_kv_heads, p.T = int(T), p.prefix = int(prefix);
  p.kv_stride = s.kv_stride;
  p.scale = softmax_scale(s);
  p.window = s.window, p.sinks = s.sinks;
  p.q = q, p.k = k, p.v = v, p.out = out;
  switch (s.head_dim) {
    case 16: launch<16>(p, stream); break;
    case 32: launch<32>(p, stream); break;
    case 64: launch<64>(p, stream); break;
    case 128: launch<128>(p, stream); break;
    case 256: launch<256>(p, stream); break;
    default: break;  // attention.cpp refuses other sizes
  }
}

}  // namespace moe::cuda::detail
