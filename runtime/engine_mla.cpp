// Multi-head latent attention (DeepSeek-V2/V3) of one layer for all tokens of a batch, in the
// absorbed form: each head's query is mapped into the latent space (q_nope through W_UK), scored
// against the cached latents plus the shared rotary key, and the attention-weighted latent goes
// through W_UV (as absorb_mla prepared them from kv_b_proj). The cache holds [kv_lora_rank +
// qk_rope_head_dim] floats per token and layer, instead of 2 * n_heads * head_dim. With float or
// shipped FP8 weights, the same values as expanding K and V (transformers does that) up to
// summation order; with our int8 ones, int8 activations as every quantized matmul.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/ops.h"
#include "runtime/engine.h"

namespace moe {
namespace {
// transformers' DeepseekV2/V3RMSNorm for q_a_layernorm / kv_a_layernorm is built without the
// config's eps, so it keeps its default.
constexpr float kLatentNormEps = 1e-6f;
}  // namespace

void Engine::mla_attention(int layer, const std::vector<Tok>& toks, std::vector<float>& x) {
  const ModelConfig& c = model_.cfg;
  const MlaConfig& m = c.mla;
  const AttentionWeights& A = model_.layers[size_t(layer)].attn;
  const int64_t T = int64_t(toks.size()), H = c.hidden, nh = c.n_heads;
  const int64_t nope = m.qk_nope_head_dim, rope = m.qk_rope_head_dim, qk = m.qk_head_dim(), vd = m.v_head_dim;
  const int64_t R = m.kv_lora_rank, row = R + rope;  // cache row: latent, then rotary key

  Scratch::Frame tmp(scratch_);  // every buffer below is written before it is read
  const std::span<float> h = tmp.take(size_t(T * H));
  norm_rows(x.data(), model_.layers[size_t(layer)].attn_norm, T, H, h.data());
  const std::span<float> q = tmp.take(size_t(T * nh * qk));  // [T, nh, nope + rope]
  if (m.q_lora_rank > 0) {
    const std::span<float> qa = tmp.take(size_t(T * m.q_lora_rank));
    cpu::matmul(pool_, h.data(), T, A.q_a, qa.data());
    for (int64_t t = 0; t < T; ++t)
      cpu::rmsnorm(&qa[size_t(t * m.q_lora_rank)], A.q_a_norm, kLatentNormEps, m.q_lora_rank, &qa[size_t(t * m.q_lora_rank)]);
    cpu::matmul(pool_, qa.data(), T, A.q_b, q.data());
  } else {
    cpu::matmul(pool_, h.data(), T, A.q, q.data());
  }
  const std::span<float> ckv = tmp.take(size_t(T * row));  // [T, latent + rotary key]
  cpu::matmul(pool_, h.data(), T, A.kv_a, ckv.data());

  std::vector<float> cs(inv_freq_.size()), sn(inv_freq_.size());  // rope / 2 each
  for (int64_t t = 0; t < T; ++t) {
    float* kv_row = &ckv[size_t(t * row)];
    cpu::rmsnorm(kv_row, A.kv_a_norm, kLatentNormEps, R, kv_row);
    rope_tables(toks[size_t(t)].pos, cs.data(), sn.data());
    cpu::rope_dims(&q[size_t(t * nh * qk + nope)], int(nh), int(qk), int(rope), c.rope_interleaved, cs.data(), sn.data());
    cpu::rope_dims(kv_row + R, 1, int(rope), int(rope), c.rope_interleaved, cs.data(), sn.data());
    toks[size_t(t)].kv->put(layer, toks[size_t(t)].pos, kv_row, nullptr);
  }

  // Queries into the latent space, every head's [T, nope] x W_UK^T in one parallel section.
  const MlaAbsorbed& ab = mla_[size_t(layer)];
  // [nh, T, nope], [nh, T, R]
  const std::span<float> qn = tmp.take(size_t(nh * T * nope)), ql = tmp.take(size_t(nh * T * R));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t hh = 0; hh < nh; ++hh)
      std::copy_n(&q[size_t((t * nh + hh) * qk)], nope, &qn[size_t((hh * T + t) * nope)]);
  std::vector<cpu::MatJob> jobs;
  for (int64_t hh = 0; hh < nh; ++hh)
    jobs.push_back({&qn[size_t(hh * T * nope)], T, ab.uk_t_heads[size_t(hh)], &ql[size_t(hh * T * R)]});
  cpu::matmul_many(pool_, jobs);

  const float scale = float(c.attention_scale);
  const std::span<float> ol = tmp.take(size_t(nh * T * R));  // [nh, T, R]: attention-weighted latents
  pool_.parallel_for(T * nh, 1, [&](int64_t b, int64_t e) {
    std::vector<float> sc, widened;
    for (int64_t i = b; i < e; ++i) {
      const int64_t t = i / nh, hh = i % nh;
      const Tok& tk = toks[size_t(t)];
      const float* qh = &q[size_t((t * nh + hh) * qk)];
      const float* qlh = &ql[size_t((hh * T + t) * R)];
      const int64_t first = c.window(layer) > 0 ? std::max<int64_t>(0, tk.pos - c.window(layer) + 1) : 0;
      const int64_t n = tk.pos - first + 1;
      sc.resize(size_t(n));
      // Rows [first, first + n): in place (fp32) or widened from a narrower KV dtype.
      const cpu::KvRows rows = tk.kv->k_rows(layer);
      const bool in_place = tk.kv->dtype() == DType::F32;
      if (!in_place) {
        widened.resize(size_t(n * row));
        tk.kv->read_k(layer, first, n, 0, row, widened.data());
      }
      const auto row_at = [&](int64_t s) { return in_place ? rows.row<float>(first + s) : &widened[size_t(s * row)]; };
      for (int64_t s = 0; s < n; ++s) {
        const float* cr = row_at(s);
        sc[size_t(s)] = (cpu::dot(qlh, cr, R) + cpu::dot(qh + nope, cr + R, rope)) * scale;
      }
      cpu::softmax(sc.data(), n);
      float* olh = &ol[size_t((hh * T + t) * R)];
      std::fill(olh, olh + R, 0.0f);
      for (int64_t s = 0; s < n; ++s) {
        const float p = sc[size_t(s)];
        const float* cr = row_at(s);
        for (int64_t r = 0; r < R; ++r) olh[r] += p * cr[r];
      }
    }
  });
  // The latents out through W_UV, every head in one section; then back to [T, nh * vd].
  const std::span<float> ov = tmp.take(size_t(nh * T * vd));  // [nh, T, vd]
  jobs.clear();
  for (int64_t hh = 0; hh < nh; ++hh)
    jobs.push_back({&ol[size_t(hh * T * R)], T, ab.uv_heads[size_t(hh)], &ov[size_t(hh * T * vd)]});
  cpu::matmul_many(pool_, jobs);
  const std::span<float> out = tmp.take(size_t(T * nh * vd));
  for (int64_t hh = 0; hh < nh; ++hh)
    for (int64_t t = 0; t < T; ++t) std::copy_n(&ov[size_t((hh * T + t) * vd)], vd, &out[size_t((t * nh + hh) * vd)]);
  const std::span<float> o = tmp.take(size_t(T * H));
  cpu::matmul(pool_, out.data(), T, A.o, o.data());
  for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
}

}  // namespace moe
