// Internal: the launchers behind attention_decode / attention_prefill (attention.cpp validates
// the arguments first) and the split-K layout they share.
#pragma once
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/attention.h"

namespace moe::cuda::detail {

// Keys per split-K block in decode. 64 keeps enough blocks for one 4k-token sequence with 4 kv
// heads (4 * 64 = 256 blocks, ~2 per H100 SM), while the partials written per chunk
// (group * head_dim + 2 * group floats) stay <= 1/16 of the K+V bytes the chunk reads at
// group 8. Chosen on paper, not tuned.
inline constexpr int kDecodeChunk = 64;
inline constexpr int kAttnThreads = 128;  // threads per block of every attention kernel

inline int64_t decode_chunks(int max_length) { return (int64_t(max_length) + kDecodeChunk - 1) / kDecodeChunk; }
inline float softmax_scale(const AttentionShape& s) { return s.scale > 0.0f ? s.scale : 1.0f / std::sqrt(float(s.head_dim)); }
// The first key a query at position pos sees (0 without a window); host and device.
__host__ __device__ inline int first_key(int pos, int window) { return window > 0 && pos >= window ? pos - window + 1 : 0; }

// Workspace for n_seq sequences, C = decode_chunks(max_length) chunks, G = n_heads / n_kv_heads,
// one cell per (sequence, kv head, chunk, query head of the group), cells in that order:
//   o [cells, head_dim]   the chunk's unnormalised sum_t exp(s_t - m) v_t
//   m [cells]             the chunk's max score
//   l [cells]             sum_t exp(s_t - m)
inline int64_t decode_partials(const AttentionShape& s, int n_seq, int max_length) {
  return int64_t(n_seq) * s.n_heads * decode_chunks(max_length);  // n_kv_heads * G = n_heads
}

void launch_decode(const AttentionShape& s, const DecodeBatch& b, cudaStream_t stream);
void launch_prefill(const AttentionShape& s, const float* q, const float* k, const float* v, int64_t prefix, int64_t T,
                    float* out, cudaStream_t stream);

}  // namespace moe::cuda::detail
