// Multi-head latent attention of one layer on the GPU engine (DeepSeek-V2/V3, Kimi-K2), step for
// step as runtime/engine_mla.cpp: queries (through the q LoRA pair and its norm, or q_proj), the
// new [latent | rotary key] rows (kv_a_proj_with_mqa, the latent normed, RoPE on both rotary
// parts), those rows into the caches, queries into the latent space (W_UK^T), attention over the
// cached rows (kernels/cuda/mla.h), the weighted latents out through W_UV, o_proj.
#include "kernels/cuda/mla.h"
#include "kernels/cuda/moe_ops.h"
#include "kernels/cuda/ops.h"
#include "runtime/gpu/gpu_engine.h"
#include "runtime/gpu/gpu_scratch.h"

namespace moe::gpu {
namespace {
// transformers builds q_a_layernorm / kv_a_layernorm without the config's eps (runtime/engine_mla.cpp).
constexpr float kLatentNormEps = 1e-6f;
}  // namespace

void GpuEngine::mla_attention(int layer, const BatchPlan& plan, bool decode) {
  const ModelConfig& c = model_.cfg;
  const MlaConfig& m = c.mla;
  const GpuLayer& W = weights_.layers[size_t(layer)];
  Scratch& s = *s_;
  const int64_t T = plan.tokens(), nh = c.n_heads;
  const int nope = m.qk_nope_head_dim, rope = m.qk_rope_head_dim, qk = m.qk_head_dim(), vd = m.v_head_dim;
  const int R = m.kv_lora_rank, row = R + rope;

  // Queries [T, nh, nope + rope].
  if (m.q_lora_rank > 0) {
    apply_rows(W.q_a, s.h.get(), T, s.qa.get());
    cuda::rmsnorm(s.qa.get(), W.q_a_norm.get(), kLatentNormEps, T, m.q_lora_rank, s.qa.get(), stream_);
    apply_rows(W.q_b, s.qa.get(), T, s.q.get());
  } else {
    apply_rows(W.q, s.h.get(), T, s.q.get());
  }
  // New cache rows [T, R + rope]: the latent normed (moved out of the strided rows and back).
  float* ckv = s.k.get();
  apply_rows(W.kv_a, s.h.get(), T, ckv);
  const size_t lat_bytes = size_t(R) * sizeof(float), row_bytes = size_t(row) * sizeof(float);
  MOE_CUDA_CHECK(cudaMemcpy2DAsync(s.lat.get(), lat_bytes, ckv, row_bytes, lat_bytes, size_t(T),
                                   cudaMemcpyDeviceToDevice, stream_));
  cuda::rmsnorm(s.lat.get(), W.kv_a_norm.get(), kLatentNormEps, T, R, s.lat.get(), stream_);
  MOE_CUDA_CHECK(cudaMemcpy2DAsync(ckv, row_bytes, s.lat.get(), lat_bytes, lat_bytes, size_t(T),
                                   cudaMemcpyDeviceToDevice, stream_));
  // RoPE: the rotary dims of every query head (after its nope dims) and the one shared rotary key.
  const float af = float(c.rope.attention_factor);
  cuda::rope(s.q.get() + nope, s.pos.get(), inv_freq_.get(), T, int(nh), {qk, rope, c.rope_interleaved}, af, stream_);
  cuda::rope(ckv + R, s.pos.get(), inv_freq_.get(), T, 1, {row, rope, c.rope_interleaved}, af, stream_);

  // The rows into the caches, and the cache each token reads.
  const float* const* cache = nullptr;
  if (decode) {
    const int n = int(plan.items.size());
    float* const* kp = s.kp.get() + int64_t(layer) * n;
    cuda::append_kv_decode(kp, nullptr, s.lengths.get(), ckv, nullptr, n, row, stream_);
    cache = kp;
  } else {
    std::vector<const float*> per_token(static_cast<size_t>(T));
    for (const BatchPlan::Item& it : plan.items) {
      const GpuKv& kv = seqs_.at(it.seq);
      MOE_CUDA_CHECK(cudaMemcpyAsync(kv.k(layer) + it.start * row, ckv + it.row * row,
                                     size_t(it.n * row) * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
      for (int64_t j = 0; j < it.n; ++j) per_token[size_t(it.row + j)] = kv.k(layer);
    }
    // Stream-ordered: the previous layer's kernel has read the table before this copy lands.
    MOE_CUDA_CHECK(cudaMemcpyAsync(s.mla_cache.get(), per_token.data(), per_token.size() * sizeof(const float*),
                                   cudaMemcpyHostToDevice, stream_));
    cache = s.mla_cache.get();
  }

  // Queries into the latent space, attention over the cached rows, the latents out.
  cuda::head_matvec(W.uk_t.get(), int(nh), R, nope, s.q.get(), nh * qk, qk, T, s.ql.get(), stream_);
  cuda::MlaBatch b;
  b.T = int(T), b.n_heads = int(nh), b.latent = R, b.rope = rope;
  b.scale = float(c.attention_scale);
  b.window = int(c.window(layer));
  b.q_latent = s.ql.get();
  b.q_rope = s.q.get() + nope, b.q_token_stride = nh * qk, b.q_head_stride = qk;
  b.cache = cache, b.pos = s.pos.get(), b.out = s.ql.get();  // in place: half the scratch
  cuda::mla_attention(b, stream_);
  cuda::head_matvec(W.uv.get(), int(nh), vd, R, s.ql.get(), nh * R, R, T, s.att.get(), stream_);
  apply_rows(W.o, s.att.get(), T, s.o.get());  // the caller adds o to x
}

}  // namespace moe::gpu
