// A gated DeltaNet layer (Qwen3-Next, Qwen3.5-MoE) of the GPU engine, step for step as
// runtime/engine_linear.cpp: projections, the gates, per sequence the causal conv over its run
// and the gated delta rule on its recurrent state (split where a snapshot is due, so the window
// and state saved there are both those after that position), the gated RMSNorm, out_proj.
#include <algorithm>

#include "kernels/cuda/deltanet.h"
#include "runtime/gpu/gpu_engine.h"
#include "runtime/gpu/gpu_scratch.h"

namespace moe::gpu {

void GpuEngine::linear_attention(int layer, const BatchPlan& plan) {
  const ModelConfig& c = model_.cfg;
  const LinearAttnConfig& l = c.linear;
  const GpuLayer& W = weights_.layers[size_t(layer)];
  Scratch& s = *s_;
  const int64_t T = plan.tokens(), nv = l.n_v_heads, C = l.conv_dim(), K = l.conv_kernel;
  const int64_t vd = nv * l.v_dim;
  const cuda::DeltaNetDims dims{l.n_k_heads, l.n_v_heads, l.k_dim, l.v_dim};

  apply_rows(W.lin_qkv, s.h.get(), T, s.lqkv.get());
  apply_rows(W.lin_z, s.h.get(), T, s.lz.get());
  apply_rows(W.lin_b, s.h.get(), T, s.lb.get());
  apply_rows(W.lin_a, s.h.get(), T, s.la.get());
  cuda::deltanet_gates(s.lb.get(), s.la.get(), W.lin_a_log.get(), W.lin_dt_bias.get(), T, int(nv), stream_);

  const int64_t every = opts_.state_snapshot_every;
  for (const BatchPlan::Item& it : plan.items) {  // each sequence's new tokens, consecutive rows
    GpuKv& kv = seqs_.at(it.seq);
    float* window = kv.state(layer);  // [K - 1, C], oldest first; then the delta-rule state
    float* S = window + (K - 1) * C;
    for (int64_t s0 = 0; s0 < it.n;) {
      const int64_t pos0 = it.start + s0;
      const int64_t s1 = every > 0 ? std::min(it.n, s0 + (every - pos0 % every)) : it.n;
      const int64_t r = it.row + s0, n = s1 - s0;
      cuda::deltanet_conv(window, s.lqkv.get() + r * C, n, W.lin_conv.get(), int(C), int(K), s.lmixed.get() + r * C,
                          s.lwin.get(), stream_);
      const int chunk = opts_.deltanet_chunk;
      if (chunk > 0 && n >= chunk)  // a prompt's run: the chunked form (equal within rounding)
        cuda::gated_delta_rule_chunked(s.lmixed.get() + r * C, n, dims, s.la.get() + r * nv, s.lb.get() + r * nv, S,
                                       s.lcore.get() + r * vd, chunk, s.lwork.get(), stream_);
      else
        cuda::gated_delta_rule(s.lmixed.get() + r * C, n, dims, s.la.get() + r * nv, s.lb.get() + r * nv, S,
                               s.lcore.get() + r * vd, stream_);
      const int64_t pos_end = it.start + s1;
      if (every > 0 && pos_end % every == 0) kv.snapshot(layer, pos_end, stream_);
      s0 = s1;
    }
  }
  cuda::gated_rmsnorm(s.lcore.get(), s.lz.get(), W.lin_norm.get(), float(c.rms_eps), T * nv, l.v_dim, stream_);
  apply_rows(W.lin_out, s.lcore.get(), T, s.o.get());  // the caller adds o to x
}

}  // namespace moe::gpu
