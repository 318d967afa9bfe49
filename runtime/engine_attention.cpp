// Attention block of one layer for all tokens of a batch: norm, QKV projections,
// optional clamp and QK-norm, RoPE, KV-cache append, causal GQA, output projection.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/ops.h"
#include "runtime/engine.h"

namespace moe {

void Engine::rope_tables(int32_t pos, float* cs, float* sn) const {
  const float af = float(model_.cfg.rope.attention_factor);  // YaRN scales cos and sin
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    const float ang = float(pos) * inv_freq_[i];
    cs[i] = std::cos(ang) * af;
    sn[i] = std::sin(ang) * af;
  }
}

void Engine::attention(int layer, const std::vector<Tok>& toks, std::vector<float>& x) {
  if (model_.cfg.is_mla()) return mla_attention(layer, toks, x);
  const ModelConfig& c = model_.cfg;
  const AttentionWeights& A = model_.layers[size_t(layer)].attn;
  const int64_t T = int64_t(toks.size()), H = c.hidden, hd = c.head_dim;
  const int64_t qd = int64_t(c.n_heads) * hd, kvd = int64_t(c.n_kv_heads) * hd;
  const float eps = float(c.rms_eps);

  Scratch::Frame tmp(scratch_);  // every buffer below is written before it is read
  const std::span<float> h = tmp.take(size_t(T * H));
  norm_rows(x.data(), model_.layers[size_t(layer)].attn_norm, T, H, h.data());
  // [T, qd], [T, kvd] x2
  const std::span<float> q = tmp.take(size_t(T * qd)), k = tmp.take(size_t(T * kvd)), v = tmp.take(size_t(T * kvd));
  std::span<float> gate;  // [T, qd] Qwen3-Next's output gate: q_proj gives [q, gate] per head
  const std::span<float> qg = tmp.take(c.attn_output_gate ? size_t(T * 2 * qd) : 0);
  {  // q, k and v in one parallel section
    std::vector<float> qb, kb, vb;
    const auto bias = [](const WeightView& b, std::vector<float>& v) -> const float* {
      if (b.empty()) return nullptr;
      v.resize(size_t(b.rows * b.cols));
      cpu::to_f32(b, 0, b.rows * b.cols, v.data());
      return v.data();
    };
    const cpu::MatJob jobs[] = {{h.data(), T, A.q, qg.empty() ? q.data() : qg.data(), bias(A.q_bias, qb)},
                                {h.data(), T, A.k, k.data(), bias(A.k_bias, kb)},
                                {h.data(), T, A.v, v.data(), bias(A.v_bias, vb)}};
    cpu::matmul_many(pool_, jobs);
  }
  if (c.attn_output_gate) {
    gate = tmp.take(size_t(T * qd));
    for (int64_t i = 0; i < T * c.n_heads; ++i) {
      std::copy_n(&qg[size_t(i * 2 * hd)], hd, &q[size_t(i * hd)]);
      std::copy_n(&qg[size_t(i * 2 * hd + hd)], hd, &gate[size_t(i * hd)]);
    }
  }

  if (c.qk_norm != QkNorm::None) {  // over the whole projection (OLMoE) or per head
    const bool full = c.qk_norm == QkNorm::Full;
    const WeightView qn = full ? A.q_norm : norm(A.q_norm), kn = full ? A.k_norm : norm(A.k_norm);
    const int64_t qw = full ? qd : hd, kw = full ? kvd : hd;  // the normed width
    const auto rows = [&](int64_t t0, int64_t t1) {
      for (int64_t i = t0 * qd / qw; i < t1 * qd / qw; ++i) cpu::rmsnorm(&q[size_t(i * qw)], qn, eps, qw, &q[size_t(i * qw)]);
      for (int64_t i = t0 * kvd / kw; i < t1 * kvd / kw; ++i) cpu::rmsnorm(&k[size_t(i * kw)], kn, eps, kw, &k[size_t(i * kw)]);
    };
    pool_.parallel_for(T, 16, rows);
  }
  if (c.clip_qkv > 0) {  // OLMoE clamps after the norm
    const float lim = float(c.clip_qkv);
    for (const std::span<float>* buf : {&q, &k, &v})
      for (float& e : *buf) e = std::clamp(e, -lim, lim);
  }

  // RoPE at each token's own position, and the token's K/V row into its cache (reserved before
  // the step, so tokens write disjoint rows: a prompt's are split over the pool).
  const auto rope_put = [&](int64_t t0, int64_t t1) {
    std::vector<float> cs(inv_freq_.size()), sn(inv_freq_.size());
    for (int64_t t = t0; t < t1; ++t) {
      rope_tables(toks[size_t(t)].pos, cs.data(), sn.data());
      cpu::rope_dims(&q[size_t(t * qd)], c.n_heads, int(hd), c.rotary_dim, c.rope_interleaved, cs.data(), sn.data());
      cpu::rope_dims(&k[size_t(t * kvd)], c.n_kv_heads, int(hd), c.rotary_dim, c.rope_interleaved, cs.data(), sn.data());
      toks[size_t(t)].kv->put(layer, toks[size_t(t)].pos, &k[size_t(t * kvd)], &v[size_t(t * kvd)]);
    }
  };
  pool_.parallel_for(T, 16, rope_put);

  // Each (token, head) pair is independent once the cache holds every key of the batch.
  const std::span<float> out = tmp.take(size_t(T * qd));  // each (token, head) written once
  const int64_t window = c.window(layer);
  std::vector<float> sinks;
  if (!A.sinks.empty()) {
    sinks.resize(size_t(c.n_heads));
    cpu::to_f32(A.sinks, 0, c.n_heads, sinks.data());
  }
  // One work item per (token, kv head): its query heads read each cached row once. Without
  // grouped queries (OLMoE) an item is up to 4 consecutive tokens of one sequence instead, which
  // then share the rows (attend_rows; the same results bit for bit). A token's cost grows with its
  // position, so items are dealt from both ends of the batch (0, last, 1, last - 1, ...): the
  // pool's contiguous chunks then cost about the same.
  const int group = c.n_heads / c.n_kv_heads;
  std::vector<std::pair<int64_t, int>> blocks;  // (first token, tokens)
  for (int64_t t = 0; t < T;) {
    int r = 1;
    while (group == 1 && window == 0 && r < 4 && t + r < T && toks[size_t(t + r)].kv == toks[size_t(t)].kv &&
           toks[size_t(t + r)].pos == toks[size_t(t)].pos + r)
      ++r;
    blocks.push_back({t, r});
    t += r;
  }
  const int64_t nb = int64_t(blocks.size());
  pool_.parallel_for(nb * c.n_kv_heads, 1, [&](int64_t b, int64_t e) {
    std::vector<float> scratch, kw, vw;
    for (int64_t i = b; i < e; ++i) {
      const int64_t r = i / c.n_kv_heads;
      const auto [t0, rows] = blocks[size_t(r % 2 == 0 ? r / 2 : nb - 1 - r / 2)];
      const int kvh = int(i % c.n_kv_heads), head = kvh * group;
      const KvCache& kv0 = *toks[size_t(t0)].kv;
      const DType dt = kv0.dtype();
      const cpu::KvRows kr = kv0.k_rows(layer, kvh * hd), vr = kv0.v_rows(layer, kvh * hd);
      if (rows > 1) {
        int64_t last[4];
        for (int j = 0; j < rows; ++j) last[j] = toks[size_t(t0 + j)].pos;
        scratch.resize(size_t(rows) * size_t(last[rows - 1] + 1));
        if (cpu::attend_rows(&q[size_t(t0 * qd + head * hd)], qd, rows, kr, vr, dt, 0, last, int(hd),
                             float(c.attention_scale), sinks.empty() ? nullptr : &sinks[size_t(head)],
                             &out[size_t(t0 * qd + head * hd)], qd, scratch.data()))
          continue;
      }
      for (int64_t t = t0; t < t0 + rows; ++t) {  // one token at a time
        const Tok& tk = toks[size_t(t)];
        const int64_t first = window > 0 ? std::max<int64_t>(0, tk.pos - window + 1) : 0, last = tk.pos;
        const int64_t n = last - first + 1;
        scratch.resize(size_t(group) * size_t(n));
        const float* qg = &q[size_t(t * qd + head * hd)];
        const float* sk = sinks.empty() ? nullptr : &sinks[size_t(head)];
        float* og = &out[size_t(t * qd + head * hd)];
        // The rows in place, in their stored type (fp32, bf16, f16) where a kernel reads it.
        if (cpu::attend_group(qg, group, kr, vr, dt, first, last, int(hd), float(c.attention_scale), sk, og,
                              scratch.data()))
          continue;
        // Else (fp8, or bf16 / f16 without AVX-512): this kv head's rows, widened.
        kw.resize(size_t(n * hd));
        vw.resize(size_t(n * hd));
        tk.kv->read_k(layer, first, n, kvh * hd, hd, kw.data());
        tk.kv->read_v(layer, first, n, kvh * hd, hd, vw.data());
        cpu::attend_group(qg, group, kw.data(), vw.data(), hd, 0, n - 1, int(hd), float(c.attention_scale), sk, og,
                          scratch.data());
      }
    }
  });
  for (size_t i = 0; i < gate.size(); ++i) out[i] *= 1.0f / (1.0f + std::exp(-gate[i]));
  const std::span<float> o = tmp.take(size_t(T * H));
  cpu::matmul(pool_, out.data(), T, A.o, o.data(), A.o_bias);
  for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
}

}  // namespace moe
