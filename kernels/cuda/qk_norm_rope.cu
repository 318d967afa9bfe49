// Per-head QK-norm and RoPE in one launch for q and k (Qwen3, GLM-4.5): one block per (token,
// head), q's heads then k's. Same arithmetic as rmsnorm() over head_dim-long rows followed by
// rope(), in the same order and with the same block size, so the results are bit-identical to
// those four launches (tests/gpu/test_ops_cuda.cpp checks it).
#include <algorithm>
#include <climits>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/ops_common.cuh"
#include "kernels/cuda/rope_pair.h"

namespace moe::cuda {
namespace {

__global__ void qk_norm_rope_heads(float* q, float* k, const float* __restrict__ qw, const float* __restrict__ kw,
                                   float eps, const int32_t* __restrict__ pos, const float* __restrict__ inv_freq,
                                   int n_heads, int n_kv_heads, int hd, int rot_dims, bool interleaved, float af) {
  const int heads = n_heads + n_kv_heads;
  const int64_t t = blockIdx.x / heads;
  const int h = int(blockIdx.x % heads);
  const bool is_q = h < n_heads;
  float* v = is_q ? q + (t * n_heads + h) * hd : k + (t * n_kv_heads + (h - n_heads)) * hd;
  const float* w = is_q ? qw : kw;
  // rmsnorm_rows: squares summed per thread in column order, then the block's sum.
  float ss = 0.0f;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) ss = fmaf(v[i], v[i], ss);
  ss = ops_detail::block_sum(ss);  // also orders every read of v above before the writes below
  const float inv = 1.0f / sqrtf(ss / float(hd) + eps);
  // rope_pairs on the normed values; each thread reads and writes its own pairs only.
  for (int p = threadIdx.x; p < rot_dims / 2; p += blockDim.x) {
    const RopePair at = rope_pair(p, rot_dims, interleaved);
    const float a = v[at.a] * inv * w[at.a], b = v[at.b] * inv * w[at.b];
    float s, c;
    sincosf(float(pos[t]) * inv_freq[p], &s, &c);
    c *= af;
    s *= af;
    v[at.a] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    v[at.b] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
  }
  // Partial rotary: the dims past rot_dims are only normed.
  for (int i = rot_dims + int(threadIdx.x); i < hd; i += blockDim.x) v[i] = v[i] * inv * w[i];
}

}  // namespace

void qk_norm_rope(float* q, float* k, const float* q_norm, const float* k_norm, float eps, const int32_t* pos,
                  const float* inv_freq, int64_t T, int n_heads, int n_kv_heads, const RopeLayout& layout,
                  float attention_factor, cudaStream_t stream) {
  using ops_detail::require;
  require(T >= 0 && n_heads >= 0 && n_kv_heads >= 0, "qk_norm_rope", "negative shape");
  if (!ops_detail::check_rope_layout(layout, "qk_norm_rope")) return;
  const int64_t blocks = T * (int64_t(n_heads) + n_kv_heads);
  require(blocks <= INT_MAX, "qk_norm_rope", "T * heads must fit in 31 bits");
  if (blocks == 0) return;
  require(q && k && q_norm && k_norm && pos && inv_freq, "qk_norm_rope", "null pointer");
  const int threads = ops_detail::norm_threads(layout.head_dim);  // rmsnorm's, for a head_dim-long row
  qk_norm_rope_heads<<<unsigned(blocks), threads, 0, stream>>>(q, k, q_norm, k_norm, eps, pos, inv_freq, n_heads,
                                                              n_kv_heads, layout.head_dim, layout.rot_dims,
                                                              layout.interleaved, attention_factor);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
