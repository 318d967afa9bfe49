// One decoder layer of the GPU engine: attention (norm, QKV, QK-norm, clamp, RoPE, KV append,
// causal GQA, output projection, residual) and the FFN (dense SwiGLU, or routed experts from
// the VRAM tier plus an optional shared expert). Mirrors runtime/engine_attention.cpp and
// runtime/engine_ffn.cpp step for step.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/ops.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/moe_ops.h"
#include "kernels/cuda/ops.h"
#include "runtime/gpu/gpu_engine.h"
#include "runtime/gpu/gpu_scratch.h"
#include "storage/vram/expert_record.h"

namespace moe::gpu {

void GpuEngine::attention(int layer, const BatchPlan& plan, bool decode) {
  const ModelConfig& c = model_.cfg;
  const GpuLayer& W = weights_.layers[size_t(layer)];
  Scratch& s = *s_;
  const int64_t T = plan.tokens(), H = c.hidden, hd = c.head_dim;
  const int64_t qd = int64_t(c.n_heads) * hd, kvd = int64_t(c.n_kv_heads) * hd;
  const float eps = float(c.rms_eps);

  cuda::rmsnorm(s.x.get(), W.attn_norm.get(), eps, T, H, s.h.get(), stream_);
  apply(W.q, s.h.get(), T, s.q.get(), *gemm_, stream_);
  apply(W.k, s.h.get(), T, s.k.get(), *gemm_, stream_);
  apply(W.v, s.h.get(), T, s.v.get(), *gemm_, stream_);
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
  const float af = float(c.rope.attention_factor);
  cuda::rope(s.q.get(), s.pos.get(), inv_freq_.get(), T, c.n_heads, int(hd), af, stream_);
  cuda::rope(s.k.get(), s.pos.get(), inv_freq_.get(), T, c.n_kv_heads, int(hd), af, stream_);

  // Append the new keys and values: an item's rows are consecutive in the batch and in its cache.
  for (const BatchPlan::Item& it : plan.items) {
    const GpuKv& kv = seqs_.at(it.seq);
    const size_t bytes = size_t(it.n * kvd) * sizeof(float);
    MOE_CUDA_CHECK(cudaMemcpyAsync(kv.k(layer) + it.start * kvd, s.k.get() + it.row * kvd, bytes,
                                   cudaMemcpyDeviceToDevice, stream_));
    MOE_CUDA_CHECK(cudaMemcpyAsync(kv.v(layer) + it.start * kvd, s.v.get() + it.row * kvd, bytes,
                                   cudaMemcpyDeviceToDevice, stream_));
  }

  const cuda::AttentionShape shape = attention_shape(c);
  if (decode) {
    const int n = int(plan.items.size());
    int max_len = 0;
    for (const auto& it : plan.items) max_len = std::max(max_len, int(it.start + 1));
    cuda::DecodeBatch b;
    b.n_seq = n;
    b.max_length = max_len;
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
  apply(W.o, s.att.get(), T, s.o.get(), *gemm_, stream_);
  cuda::add_inplace(s.x.get(), s.o.get(), T * H, stream_);
}

void GpuEngine::dense_ffn(const Linear& gate, const Linear& up, const Linear& down, int64_t n, int64_t inter,
                          const float* h, float* out) {
  Scratch& s = *s_;
  apply(gate, h, n, s.g.get(), *gemm_, stream_);
  apply(up, h, n, s.u.get(), *gemm_, stream_);
  cuda::silu_mul(s.g.get(), s.u.get(), n * inter, s.g.get(), stream_);
  apply(down, s.g.get(), n, out, *gemm_, stream_);
}

void GpuEngine::ffn(int layer, const BatchPlan& plan) {
  const LayerWeights& L = model_.layers[size_t(layer)];
  const GpuLayer& W = weights_.layers[size_t(layer)];
  if (L.kind == FfnKind::Dense)
    dense_ffn(W.gate, W.up, W.down, plan.tokens(), model_.cfg.dense_intermediate, s_->h.get(), s_->f.get());
  else
    moe(layer, plan);
}

void GpuEngine::moe(int layer, const BatchPlan& plan) {
  const ModelConfig& c = model_.cfg;
  const GpuLayer& W = weights_.layers[size_t(layer)];
  Scratch& s = *s_;
  const int E = c.router.n_experts, K = c.router.top_k;
  const int64_t T = plan.tokens(), H = c.hidden, I = c.moe_intermediate;

  // Router logits to the host; the host routes with the CPU engine's rule (softmax, top-k,
  // ties to the lower index, optional renormalisation). The sync also means every kernel of
  // the previous layer is done, so its experts' slots can be released now.
  apply(W.router, s.h.get(), T, s.router.get(), *gemm_, stream_);
  float* probs = s.host_probs.as<float>();  // [T, E] pinned: the read-back is a plain DMA
  MOE_CUDA_CHECK(cudaMemcpyAsync(probs, s.router.get(), size_t(T * E) * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  sync();
  std::vector<int32_t> ids(size_t(T * K));
  std::vector<float> wts(size_t(T * K));
  cpu::route(probs, T, E, K, c.router.norm_topk_prob, ids.data(), wts.data());
  if (override_) override_(layer, int(T), K, ids.data(), wts.data());
  if (!hooks_.empty()) {
    std::vector<float> h(size_t(T * H)), x(size_t(T * H));
    s.h.download(h.data(), h.size());
    s.x.download(x.data(), x.size());
    const RoutingEvent ev{layer, int(T), K, ids.data(), wts.data(), plan.seq.data(), plan.pos.data(), h.data(), x.data()};
    for (const auto& hook : hooks_) hook(ev);
  }

  // Pairs (t, j) grouped by expert, ascending: gathered row r holds the token idx[r]; pair i's
  // output is row yrow[i]. The previous layer's upload from host_route is done (sync above).
  const int64_t TK = T * K;
  int32_t* idx = s.host_route.as<int32_t>();
  int32_t* yrow = idx + TK;
  std::memcpy(yrow + TK, wts.data(), size_t(TK) * sizeof(float));  // the gate weights' bits
  std::vector<std::vector<int32_t>> by_expert(static_cast<size_t>(E));
  for (int64_t i = 0; i < TK; ++i) by_expert[size_t(ids[size_t(i)])].push_back(int32_t(i));
  std::vector<int> used;
  std::vector<int64_t> first;  // [used] first row of each used expert
  int32_t rows = 0;
  for (int e = 0; e < E; ++e) {
    if (by_expert[size_t(e)].empty()) continue;
    used.push_back(e);
    first.push_back(rows);
    for (int32_t i : by_expert[size_t(e)]) {
      yrow[i] = rows;
      idx[rows++] = i / K;
    }
  }
  MOE_CUDA_CHECK(cudaMemcpyAsync(s.route.get(), idx, size_t(3 * TK) * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  const int32_t* d_idx = s.route.get();
  const int32_t* d_yrow = d_idx + TK;
  const float* d_wts = reinterpret_cast<const float*>(d_idx + 2 * TK);
  cuda::gather_rows(s.h.get(), d_idx, TK, H, s.xg.get(), stream_);

  // top_k experts at a time (a budget always holds that many). A chunk's slots are released
  // once the device is done with them: at once after a sync when more chunks follow (their
  // acquires may need the slots), else at the next layer's sync.
  const ExpertRecordLayout& lay = records_->layout();
  const ExpertWeights& shape = records_->shape();
  const bool defer = tier_->fully_resident() || tier_->slots() >= 2 * size_t(K);
  for (size_t c0 = 0; c0 < used.size(); c0 += size_t(K)) {
    const size_t c1 = std::min(used.size(), c0 + size_t(K));
    std::vector<VramExpert> ve;
    const Clock::time_point ta = Clock::now();
    for (size_t u = c0; u < c1; ++u) {
      ve.push_back(tier_->acquire(layer, used[u]));
      // Listed at once: should anything below throw, the next sync still releases it.
      pending_release_.push_back({layer, used[u]});
    }
    times_.acquire_s += seconds_since(ta);
    const bool grouped = opts_.grouped_experts && grouped_ok_;
    for (auto& g : group_) g.clear();
    for (size_t u = c0; u < c1; ++u) {
      const VramExpert& x = ve[u - c0];
      if (x.ticket) dev_->stream_wait(x.ticket, stream_);  // compute waits for this copy only
      const void* base = reinterpret_cast<const void*>(x.addr);
      const auto dw = [&](const WeightView& sh, const RecordPiece& p) {
        const WeightView v = record_view(sh, base, p);
        return cuda::DeviceWeight{v.dtype, v.data, v.rows, v.cols, v.scales, v.zeros, v.group};
      };
      const int64_t r0 = first[u], n = int64_t(by_expert[size_t(used[u])].size());
      if (grouped) {  // this expert's rows of xg -> the same rows of g / u / y
        std::vector<int32_t> rows(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) rows[size_t(i)] = int32_t(r0 + i);
        group_[0].push_back({dw(shape.gate, lay.gate), rows, rows});
        group_[1].push_back({dw(shape.up, lay.up), rows, rows});
        group_[2].push_back({dw(shape.down, lay.down), rows, rows});
        continue;
      }
      float* g = s.g.get() + r0 * I;
      float* up = s.u.get() + r0 * I;
      apply(dw(shape.gate, lay.gate), s.xg.get() + r0 * H, n, g, *gemm_, stream_);
      apply(dw(shape.up, lay.up), s.xg.get() + r0 * H, n, up, *gemm_, stream_);
      cuda::silu_mul(g, up, n * I, g, stream_);
      apply(dw(shape.down, lay.down), g, n, s.y.get() + r0 * H, *gemm_, stream_);
    }
    if (grouped) {
      // The chunk's rows are consecutive: [first[c0], first[c1 - 1] + its tokens).
      const int64_t R0 = first[c0], R1 = first[c1 - 1] + int64_t(by_expert[size_t(used[c1 - 1])].size());
      grouped_[0].set(group_[0], TK, TK, stream_);
      grouped_[0].run(s.xg.get(), s.g.get(), stream_);
      grouped_[1].set(group_[1], TK, TK, stream_);
      grouped_[1].run(s.xg.get(), s.u.get(), stream_);
      cuda::silu_mul(s.g.get() + R0 * I, s.u.get() + R0 * I, (R1 - R0) * I, s.g.get() + R0 * I, stream_);
      grouped_[2].set(group_[2], TK, TK, stream_);
      grouped_[2].run(s.g.get(), s.y.get(), stream_);
    }
    // Released (in sync) once the device is done with them: now when more chunks follow or
    // the budget cannot spare them, else at the next layer's sync.
    if (c1 != used.size() || !defer) sync();
  }
  cuda::moe_combine(s.y.get(), d_yrow, d_wts, T, K, H, s.f.get(), stream_);

  if (c.shared_intermediate > 0) {
    dense_ffn(W.shared_gate_proj, W.shared_up, W.shared_down, T, c.shared_intermediate, s.h.get(), s.sh.get());
    const float* gl = nullptr;
    if (!W.shared_gate.empty()) {
      apply(W.shared_gate, s.h.get(), T, s.sgate.get(), *gemm_, stream_);
      gl = s.sgate.get();
    }
    cuda::add_gated(s.f.get(), s.sh.get(), gl, T, H, stream_);
  }
}

}  // namespace moe::gpu
