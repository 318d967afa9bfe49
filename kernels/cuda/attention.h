// Causal grouped-query attention on the GPU, fp32 throughout, over a KV cache laid out as the
// CPU one (runtime/kv_cache.h, kernels/cpu/attention.h): per sequence and layer, K and V are each
//   [length, kv_stride] row-major floats, kv head g of row t at  k + t * kv_stride + g * head_dim
// (kv_stride >= n_kv_heads * head_dim; the cache's row width is n_kv_heads * head_dim).
// Query head h reads kv head h / (n_heads / n_kv_heads). Softmax scale `scale` (1 / sqrt(head_dim)
// when 0). A sliding window (window > 0) limits the query at position p to keys p - window + 1 .. p;
// sinks (gpt-oss) add one logit per query head to the softmax's denominator, with no value, as
// cpu::attend does.
// As on the CPU, the new tokens' keys and values are written into the cache first, then
// attention runs over every key up to and including each query's own position.
//
//   attention_decode   one new token for each of n_seq sequences, each its own length, one launch
//                      pair: split-K over the keys (flash-decoding), then a combine kernel.
//   attention_prefill  T new tokens of one sequence after a cached prefix, causal: a tiled
//                      kernel with an online softmax over key tiles. Correct, not tuned.
//
// head_dim: 64, 128 and 256 (real models; 256: Qwen3-Next / 3.5, not yet run on a GPU), 16 and 32
// (the HF test fixtures: tests/fixtures/*/
// config.json give 32 explicitly and 64 / 4 = 16 otherwise). n_heads a multiple of n_kv_heads,
// n_heads / n_kv_heads <= kAttentionMaxGroup.
// Pointers are device pointers, every K/V base and q/out 16-byte aligned (cudaMalloc gives 256;
// kv_stride is a multiple of 4 because head_dim is). Asynchronous on `stream`. Throws
// std::invalid_argument for an unsupported shape (before launching anything),
// std::runtime_error (kernels/cuda/check.h) when CUDA reports an error.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::cuda {

struct AttentionShape {
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;     // 16, 32, 64, 128 or 256
  int64_t kv_stride = 0;  // floats between consecutive K (and V) rows
  float scale = 0.0f;     // 0: 1 / sqrt(head_dim)
  int window = 0;         // > 0: each query sees its last `window` keys only (its own included)
  const float* sinks = nullptr;  // [n_heads] device, or null: a logit per query head in the softmax
};

inline constexpr int kAttentionMaxGroup = 32;  // query heads per kv head (shared memory bound)

struct DecodeBatch {
  int n_seq = 0;
  int max_length = 0;               // >= every lengths[i]: sizes the grid (host-side bound)
  const float* q = nullptr;         // [n_seq, n_heads, head_dim], the new tokens' queries
  const float* const* k = nullptr;  // [n_seq] device array of device pointers, each [>= length, kv_stride]
  const float* const* v = nullptr;  // [n_seq] likewise
  const int32_t* lengths = nullptr; // [n_seq] device: keys 0 .. length-1 (the new token's own at length-1); >= 1
  float* out = nullptr;             // [n_seq, n_heads, head_dim]
  float* workspace = nullptr;       // >= attention_decode_workspace(shape, n_seq, max_length) floats
};

// Floats of scratch attention_decode needs: per (sequence, kv head, key chunk) the partial
// weighted V sums [group, head_dim], maxima [group] and sums [group].
int64_t attention_decode_workspace(const AttentionShape& s, int n_seq, int max_length);

void attention_decode(const AttentionShape& s, const DecodeBatch& b, cudaStream_t stream);

// q: [T, n_heads, head_dim] of the tokens at positions prefix .. prefix+T-1.
// k, v: [prefix + T, kv_stride], the cache with the new tokens already written.
// out: [T, n_heads, head_dim]. Query i attends keys 0 .. prefix + i.
void attention_prefill(const AttentionShape& s, const float* q, const float* k, const float* v, int64_t prefix,
                       int64_t T, float* out, cudaStream_t stream);

}  // namespace moe::cuda
