// One decoder layer of the GPU engine: attention (norm, QKV, QK-norm, clamp, RoPE, KV append,
// causal GQA with gpt-oss's sliding windows and sinks, output projection, residual) and the FFN
// (dense SwiGLU here; routed experts in gpu_moe.cpp). Mirrors runtime/engine_attention.cpp and
// runtime/engine_ffn.cpp step for step.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/ops.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/deltanet.h"
#include "kernels/cuda/moe_ops.h"
#include "kernels/cuda/ops.h"
#include "runtime/gpu/gpu_engine.h"
#include "runtime/gpu/gpu_scratch.h"

namespace moe::gpu {

void GpuEngine::attention(int layer, const BatchPlan& plan, bool decode) {
  const ModelConfig& c = model_.cfg;
  if (c.is_mla()) {
    mla_attention(layer, plan, decode);
    return mark("attn.mla");
  }
  if (c.is_linear(layer)) {
    linear_attention(layer, plan);
    return mark("attn.deltanet");
  }
  const GpuLayer& W = weights_.layers[size_t(layer)];
  Scratch& s = *s_;
  const int64_t T = plan.tokens(), hd = c.head_dim;
  const int64_t qd = int64_t(c.n_heads) * hd, kvd = int64_t(c.n_kv_heads) * hd;
  const float eps = float(c.rms_eps);

  // h = attn_norm(x) is the caller's (fused with the residual add before it).
  const Linear* qkv[3] = {&W.q, &W.k, &W.v};
  // Qwen3-Next's gated attention: q_proj yields each head's query and then its gate.
  float* const out[3] = {c.attn_output_gate ? s.qg.get() : s.q.get(), s.k.get(), s.v.get()};
  if (prompt_rows_ > 0 && is_quantized(W.q.m->weight().dtype))  // quantized: no shared rounding to keep
    for (int i = 0; i < 3; ++i) apply_rows(*qkv[i], s.h.get(), T, out[i]);
  else
    apply_same_x(qkv, out, 3, s.h.get(), T, *gemm_, stream_);
  mark("attn.qkv");
  if (c.attn_output_gate) cuda::split_query_gate(s.qg.get(), T, c.n_heads, int(hd), s.q.get(), s.gate.get(), stream_);
  const float af = float(c.rope.attention_factor);
  const cuda::RopeLayout rl{int(hd), c.rotary_dim, c.rope_interleaved};
  if (c.qk_norm == QkNorm::PerHead && c.clip_qkv <= 0) {  // Qwen3, GLM-4.5: norm and RoPE in one launch
    cuda::qk_norm_rope(s.q.get(), s.k.get(), W.q_norm.get(), W.k_norm.get(), eps, s.pos.get(), inv_freq_.get(), T,
                       c.n_heads, c.n_kv_heads, rl, af, stream_);
  } else {
    if (c.qk_norm == QkNorm::Full) {
      cuda::rmsnorm(s.q.get(), W.q_norm.get(), eps, T, qd, s.q.get(), stream_);
      cuda::rmsnorm(s.k.get(), W.k_norm.get(), eps, T, kvd, s.k.get(), stream_);
    } else if (c.qk_norm == QkNorm::PerHead) {
      cuda::rmsnorm(s.q.get(), W.q_norm.get(), eps, T * c.n_heads, hd, s.q.get(), stream_);
      cuda::rmsnorm(s.k.get(), W.k_norm.get(), eps, T * c.n_kv_heads, hd, s.k.get(), stream_);
    }
    if (c.clip_qkv > 0) {  // OLMoE clamps after the norm
      cuda::clamp(s.q.get(), T * qd, float(c.clip_qkv), stream_);
      cuda::clamp(s.k.get(), T * kvd, float(c.clip_qkv), stream_);
      cuda::clamp(s.v.get(), T * kvd, float(c.clip_qkv), stream_);
    }
    cuda::rope(s.q.get(), s.pos.get(), inv_freq_.get(), T, c.n_heads, rl, af, stream_);
    cuda::rope(s.k.get(), s.pos.get(), inv_freq_.get(), T, c.n_kv_heads, rl, af, stream_);
  }

  // Append the new keys and values. Decode: one launch that reads each sequence's cache address
  // and length from the device (a captured step replays it). Else an item's rows are
  // consecutive in the batch and in its cache: one copy each.
  if (decode) {
    const int n = int(plan.items.size());
    cuda::append_kv_decode(s.kp.get() + int64_t(layer) * n, s.vp.get() + int64_t(layer) * n, s.lengths.get(),
                           s.k.get(), s.v.get(), n, kvd, stream_);
  } else {
    for (const BatchPlan::Item& it : plan.items) {
      const GpuKv& kv = seqs_.at(it.seq);
      const size_t bytes = size_t(it.n * kvd) * sizeof(float);
      MOE_CUDA_CHECK(cudaMemcpyAsync(kv.k(layer) + it.start * kvd, s.k.get() + it.row * kvd, bytes,
                                     cudaMemcpyDeviceToDevice, stream_));
      MOE_CUDA_CHECK(cudaMemcpyAsync(kv.v(layer) + it.start * kvd, s.v.get() + it.row * kvd, bytes,
                                     cudaMemcpyDeviceToDevice, stream_));
    }
  }

  mark("attn.rope_kv");
  cuda::AttentionShape shape = attention_shape(c);
  shape.scale = float(c.attention_scale);
  shape.window = int(c.window(layer));  // gpt-oss: every other layer slides
  shape.sinks = W.sinks.size() ? W.sinks.get() : nullptr;
  if (decode) {
    cuda::DecodeBatch b;
    const int n = int(plan.items.size());
    b.n_seq = n;
    b.max_length = decode_max_len_;  // a bound (the grid), rounded up so captured steps can reuse it
    b.q = s.q.get();
    b.k = s.kp.get() + int64_t(layer) * n;
    b.v = s.vp.get() + int64_t(layer) * n;
    b.lengths = s.lengths.get();
    b.out = s.att.get();
    b.workspace = s.work.get();
    cuda::attention_decode(shape, b, stream_);
  } else {
    for (const BatchPlan::Item& it : plan.items) {
      const GpuKv& kv = seqs_.at(it.seq);
      cuda::attention_prefill(shape, s.q.get() + it.row * qd, kv.k(layer), kv.v(layer), it.start, it.n,
                              s.att.get() + it.row * qd, stream_);
    }
  }
  if (c.attn_output_gate) cuda::mul_sigmoid(s.att.get(), s.gate.get(), T * qd, stream_);
  mark("attn.attend");
  apply_rows(W.o, s.att.get(), T, s.o.get());  // the caller adds o to x
  mark("attn.o_proj");
}

void GpuEngine::dense_ffn(const Linear& gate, const Linear& up, const Linear& down, int64_t n, int64_t inter,
                          const float* h, float* out) {
  Scratch& s = *s_;
  apply_rows(gate, h, n, s.g.get());
  apply_rows(up, h, n, s.u.get());
  cuda::silu_mul(s.g.get(), s.u.get(), n * inter, s.g.get(), stream_);
  apply_rows(down, s.g.get(), n, out);
}

void GpuEngine::ffn(int layer, const BatchPlan& plan, const StepPlan& step) {
  const GpuLayer& W = weights_.layers[size_t(layer)];
  if (step.route[size_t(layer)] == RouteSite::None) {  // a dense layer
    dense_ffn(W.gate, W.up, W.down, plan.tokens(), model_.cfg.dense_intermediate, s_->h.get(), s_->f.get());
    mark("dense_ffn");
  } else {
    moe(layer, plan, step);
  }
}

}  // namespace moe::gpu
