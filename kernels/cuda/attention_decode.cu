// Decode attention, flash-decoding style: the keys of each (sequence, kv head) are split into
// chunks of kDecodeChunk; one block per (chunk, kv head, sequence) computes, for all the group's
// query heads at once (so each K/V row is read once per group, not once per query head), the
// chunk's max score m, sum l = sum exp(s - m) and unnormalised sum exp(s - m) v. A second kernel
// combines the chunks of each query head: out = sum_c e^(m_c - M) o_c / sum_c e^(m_c - M) l_c
// (plus e^(sink - M) in the denominator, M counting the sink, for a head with a sink). Under a
// sliding window a chunk holds only the keys the query sees; chunks wholly before them are skipped.
// Exact (no approximated exp), fp32 throughout. Chosen on paper, not tuned on a GPU.
#include "kernels/cuda/warp.cuh"
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention_launch.h"
#include "kernels/cuda/check.h"

namespace moe::cuda::detail {
namespace {

struct DecodeParams {
  int n_heads, n_kv_heads, group;
  int64_t kv_stride;
  int64_t chunks;  // C: chunks of the longest sequence (grid.x)
  float scale;
  int window;           // 0: none
  const float* sinks;   // [n_heads] or null
  const float* q;
  const float* const* k;
  const float* const* v;
  const int32_t* lengths;
  float* out;
  float* o_part;  // [n_seq, n_kv_heads, C, group, D]
  float* m_part;  // [n_seq, n_kv_heads, C, group]
  float* l_part;  // [n_seq, n_kv_heads, C, group]
};

__device__ __forceinline__ float4 ldg4(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }

// Grid (chunk, kv head, sequence). Dynamic shared memory:
//   sq [group, D] queries; ss [group, kDecodeChunk] scores, then exp(s - m); sred [kAttnThreads] float4.
template <int D>
__global__ void __launch_bounds__(kAttnThreads) decode_chunk_kernel(DecodeParams p) {
  constexpr int L4 = D / 4;              // float4 columns of a row
  constexpr int L = L4 < 32 ? L4 : 32;   // lanes per key in the score loop
  constexpr int F = L4 / L;              // float4 of the key per lane: 1, or 2 at D = 256
  constexpr int KPW = 32 / L;            // keys per warp per step
  constexpr int kWarps = kAttnThreads / 32;
  const int chunk = blockIdx.x, kvh = blockIdx.y, seq = blockIdx.z;
  const int len = p.lengths[seq];
  // The chunk's keys the query (at len - 1) sees: [t0, t1).
  const int t0 = max(chunk * kDecodeChunk, first_key(len - 1, p.window));
  const int t1 = min(chunk * kDecodeChunk + kDecodeChunk, len);
  if (t0 >= t1) return;  // past a shorter sequence or before its window: the combine skips it
  const int n = t1 - t0;
  const int G = p.group, tid = threadIdx.x, warp = tid / 32, lane = tid % 32;

  extern __shared__ float4 smem[];
  float* sq = reinterpret_cast<float*>(smem);
  float* ss = sq + G * D;
  float4* sred = reinterpret_cast<float4*>(ss + G * kDecodeChunk);  // G * (D + 64) floats: 16-byte aligned

  // The group's query heads kvh*G .. kvh*G+G-1 are contiguous: [G, D].
  const float* q = p.q + (int64_t(seq) * p.n_heads + int64_t(kvh) * G) * D;
  for (int i = tid; i < G * L4; i += kAttnThreads) reinterpret_cast<float4*>(sq)[i] = ldg4(q + 4 * i);
  __syncthreads();

  // Scores: a sub-group of L lanes per key, each lane F float4 of it (columns sl, sl + L), reduced
  // by shuffles.
  const float* kbase = p.k[seq] + int64_t(t0) * p.kv_stride + int64_t(kvh) * D;
  const int sub = lane / L, sl = lane % L;
  for (int tb = warp * KPW; tb < n; tb += kWarps * KPW) {  // warp-uniform bound: every lane shuffles
    const int t = tb + sub;
    float4 k4[F];
#pragma unroll
    for (int f = 0; f < F; ++f)
      k4[f] = t < n ? ldg4(kbase + int64_t(t) * p.kv_stride + 4 * (sl + f * L)) : make_float4(0, 0, 0, 0);
    for (int h = 0; h < G; ++h) {
      float part = 0.0f;
#pragma unroll
      for (int f = 0; f < F; ++f) {
        const float4 q4 = reinterpret_cast<const float4*>(sq + h * D)[sl + f * L];
        part += q4.x * k4[f].x + q4.y * k4[f].y + q4.z * k4[f].z + q4.w * k4[f].w;
      }
#pragma unroll
      for (int off = L / 2; off > 0; off /= 2) part += __shfl_xor_sync(0xffffffffu, part, off);
      if (t < n && sl == 0) ss[h * kDecodeChunk + t] = part * p.scale;
    }
  }
  __syncthreads();

  // Per query head: the chunk's max and sum; ss becomes exp(s - m).
  const int64_t cell0 = ((int64_t(seq) * p.n_kv_heads + kvh) * p.chunks + chunk) * G;  // (seq, kvh, chunk, 0)
  for (int h = warp; h < G; h += kWarps) {
    float* s = ss + h * kDecodeChunk;
    float m = -INFINITY;
    for (int t = lane; t < n; t += 32) m = fmaxf(m, s[t]);
    m = warp_max(m);
    float l = 0.0f;
    for (int t = lane; t < n; t += 32) l += (s[t] = expf(s[t] - m));
    l = warp_sum(l);
    if (lane == 0) p.m_part[cell0 + h] = m, p.l_part[cell0 + h] = l;
  }
  __syncthreads();

  // Weighted V: work item = (slice of the keys, head, float4 column); consecutive threads take
  // consecutive columns of one V row (coalesced). With few (head, column) pairs the keys are
  // split into KS slices, summed through shared memory.
  const float* vbase = p.v[seq] + int64_t(t0) * p.kv_stride + int64_t(kvh) * D;
  const int pairs = G * L4;
  const int KS = pairs >= kAttnThreads ? 1 : kAttnThreads / pairs;
  float* o = p.o_part + cell0 * D;  // [G, D]
  for (int item = tid; item < pairs * KS; item += kAttnThreads) {
    const int pair = item % pairs, slice = item / pairs, h = pair / L4, c = pair % L4;
    float4 acc = make_float4(0, 0, 0, 0);
    for (int t = slice; t < n; t += KS) {
      const float w = ss[h * kDecodeChunk + t];
      const float4 v4 = ldg4(vbase + int64_t(t) * p.kv_stride + 4 * c);
      acc.x += w * v4.x, acc.y += w * v4.y, acc.z += w * v4.z, acc.w += w * v4.w;
    }
    if (KS == 1)
      reinterpret_cast<float4*>(o)[pair] = acc;
    else
      sred[item] = acc;
  }
  if (KS > 1) {  // block-uniform
    __syncthreads();
    for (int pair = tid; pair < pairs; pair += kAttnThreads) {
      float4 acc = sred[pair];
      for (int sl2 = 1; sl2 < KS; ++sl2) {
        const float4 r = sred[sl2 * pairs + pair];
        acc.x += r.x, acc.y += r.y, acc.z += r.z, acc.w += r.w;
      }
      reinterpret_cast<float4*>(o)[pair] = acc;
    }
  }
}

// Grid (query head, sequence), D threads: thread d merges the chunks' column d.
template <int D>
__global__ void __launch_bounds__(D) decode_combine_kernel(DecodeParams p) {
  const int h = blockIdx.x, seq = blockIdx.y, d = threadIdx.x;
  const int G = p.group, kvh = h / G, g = h % G;
  const int len = p.lengths[seq];
  const int c0 = first_key(len - 1, p.window) / kDecodeChunk, nc = (len + kDecodeChunk - 1) / kDecodeChunk;
  const int64_t cell0 = (int64_t(seq) * p.n_kv_heads + kvh) * p.chunks * G + g;  // chunk c: cell0 + c * G
  const float sink = p.sinks ? p.sinks[h] : -INFINITY;
  float M = sink;
  for (int c = c0; c < nc; ++c) M = fmaxf(M, p.m_part[cell0 + int64_t(c) * G]);
  float acc = 0.0f, l = p.sinks ? expf(sink - M) : 0.0f;
  for (int c = c0; c < nc; ++c) {
    const int64_t cell = cell0 + int64_t(c) * G;
    const float w = expf(p.m_part[cell] - M);
    l += w * p.l_part[cell];
    acc += w * p.o_part[cell * D + d];
  }
  p.out[(int64_t(seq) * p.n_heads + h) * D + d] = acc / l;
}

template <int D>
void launch(const DecodeParams& p, int n_seq, cudaStream_t stream) {
  const size_t smem = size_t(p.group) * (D + kDecodeChunk) * sizeof(float) + kAttnThreads * sizeof(float4);
  decode_chunk_kernel<D><<<dim3(unsigned(p.chunks), unsigned(p.n_kv_heads), unsigned(n_seq)), kAttnThreads, smem, stream>>>(p);
  MOE_CUDA_CHECK_LAUNCH();
  decode_combine_kernel<D><<<dim3(unsigned(p.n_heads), unsigned(n_seq)), D, 0, stream>>>(p);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_decode(const AttentionShape& s, const DecodeBatch& b, cudaStream_t stream) {
  DecodeParams p{};
  p.n_heads = s.n_heads, p.n_kv_heads = s.n_kv_heads, p.group = s.n_heads / s.n_kv_heads;
  p.kv_stride = s.kv_stride;
  p.chunks = decode_chunks(b.max_length);
  p.scale = softmax_scale(s);
  p.window = s.window, p.sinks = s.sinks;
  p.q = b.q, p.k = b.k, p.v = b.v, p.lengths = b.lengths, p.out = b.out;
  const int64_t cells = decode_partials(s, b.n_seq, b.max_length);
  p.o_part = b.workspace;
  p.m_part = b.workspace + cells * s.head_dim;
  p.l_part = p.m_part + cells;
  switch (s.head_dim) {
    case 16: launch<16>(p, b.n_seq, stream); break;
    case 32: launch<32>(p, b.n_seq, stream); break;
    case 64: launch<64>(p, b.n_seq, stream); break;
    case 128: launch<128>(p, b.n_seq, stream); break;
    case 256: launch<256>(p, b.n_seq, stream); break;
    default: break;  // attention.cpp refuses other sizes
  }
}

}  // namespace moe::cuda::detail
