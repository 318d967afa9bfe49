// Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2) on the GPU, in the absorbed form the CPU
// engine runs (runtime/engine_mla.cpp): each head's query mapped into the latent space through
// W_UK, scored against every cached [latent | rotary key] row, and the weighted latents mapped
// out through W_UV. Same conventions as ops.h: device pointers, fp32, asynchronous on `stream`,
// arguments checked before launching (std::invalid_argument).
//
// Written without a GPU at hand (2026-12-07): one block per (query head, token), the keys split
// over its warps with an online softmax each, merged at the end. Correct first, not tuned: every
// head re-reads its token's whole cache.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::cuda {

// out[t, h, i] = sum_j W[h, i, j] * in[t * in_token_stride + h * in_head_stride + j], i < rows,
// j < cols: the absorbed projections, W_UK^T [heads, R, nope] (queries into the latent space)
// and W_UV [heads, vd, R] (latents out). One warp per output, lanes over j.
void head_matvec(const float* W /*[heads, rows, cols]*/, int heads, int rows, int cols, const float* in,
                 int64_t in_token_stride, int64_t in_head_stride, int64_t T, float* out /*[T, heads, rows]*/,
                 cudaStream_t stream);

inline constexpr int kMlaMaxLatent = 1024;  // kv_lora_rank: 512 in every released model

struct MlaBatch {
  int T = 0, n_heads = 0;
  int latent = 0;  // kv_lora_rank R, <= kMlaMaxLatent
  int rope = 0;    // qk_rope_head_dim: the cache row is [R | rope]
  float scale = 0.0f;
  int window = 0;                // > 0: each query sees its last `window` keys only
  const float* q_latent = nullptr;  // [T, n_heads, R]: W_UK^T q_nope
  // The rotary part of head h of token t: q_rope + t * q_token_stride + h * q_head_stride.
  const float* q_rope = nullptr;
  int64_t q_token_stride = 0, q_head_stride = 0;
  const float* const* cache = nullptr;  // [T] device table: token t's sequence cache [>= pos + 1, R + rope]
  const int32_t* pos = nullptr;         // [T] device: token t sees keys first .. pos[t] (its own included)
  float* out = nullptr;                 // [T, n_heads, R]: the weighted latents; may be q_latent
                                        // (each block reads its own query row before it writes it)
};

// out[t, h] = sum_s softmax_s((q_latent[t, h] . c_s[:R] + q_rope[t, h] . c_s[R:]) * scale) c_s[:R]
// over token t's keys s, as runtime/engine_mla.cpp.
void mla_attention(const MlaBatch& b, cudaStream_t stream);

}  // namespace moe::cuda
