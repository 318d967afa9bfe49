#include "runtime/engine.h"

#include <fmt/format.h>

#include <stdexcept>

#include "kernels/cpu/ops.h"
#include "runtime/batch_plan.h"

namespace moe {

Engine::Engine(const Model& model, EngineOptions opts)
    : model_(model), opts_(opts), pool_(opts.threads), inv_freq_(rope_inv_freq(model.cfg.rope, model.cfg.rotary_dim)) {
  if (opts_.max_seq_len <= 0) opts_.max_seq_len = model.cfg.max_position;
  if (model.cfg.is_mla())
    for (const LayerWeights& L : model.layers) {
      const WeightView& w = L.attn.kv_b;
      mla_kvb_.emplace_back(size_t(w.rows * w.cols));
      cpu::to_f32(w, 0, w.rows * w.cols, mla_kvb_.back().data());
    }
}

SeqId Engine::create_sequence() {
  const ModelConfig& c = model_.cfg;
  if (c.is_mla()) return seqs_.add(std::make_unique<KvCache>(c.n_layers, c.kv_floats_per_layer(), 0));
  const int64_t w = int64_t(c.n_kv_heads) * c.head_dim;
  return seqs_.add(std::make_unique<KvCache>(c.n_layers, w, w));
}

SeqId Engine::fork_sequence(SeqId src, int64_t n) {
  return seqs_.add(std::make_unique<KvCache>(seqs_.prefix_of(src, n).prefix(n)));
}

void Engine::truncate(SeqId seq, int64_t n) { seqs_.truncate(seq, n); }
void Engine::free_sequence(SeqId seq) { seqs_.erase(seq); }
int64_t Engine::length(SeqId seq) const { return seqs_.at(seq).length(); }
int64_t Engine::kv_bytes() const { return seqs_.bytes(); }

std::vector<float> Engine::forward(std::span<const BatchItem> batch) {
  const ModelConfig& c = model_.cfg;
  const int64_t H = c.hidden, V = c.vocab_size;

  // Validate everything before touching any state.
  const BatchPlan plan = plan_batch(batch, [&](SeqId s) { return seqs_.at(s).length(); }, opts_.max_seq_len, V);
  std::vector<Tok> toks;
  for (int64_t t = 0; t < plan.tokens(); ++t)
    toks.push_back({&seqs_.at(plan.seq[size_t(t)]), plan.seq[size_t(t)], plan.pos[size_t(t)]});
  for (auto& [id, n] : plan.added) {
    KvCache& kv = seqs_.at(id);
    kv.reserve(kv.length() + n);
  }
  const int64_t T = int64_t(toks.size());

  std::vector<float> x(size_t(T * H));  // [T, H] residual stream
  for (int64_t t = 0; t < T; ++t) cpu::to_f32(model_.embed, int64_t(plan.ids[size_t(t)]) * H, H, &x[size_t(t * H)]);

  std::vector<float> h(size_t(T * H)), f(size_t(T * H));
  for (int l = 0; l < c.n_layers; ++l) {
    attention(l, toks, x);
    const LayerWeights& L = model_.layers[size_t(l)];
    for (int64_t t = 0; t < T; ++t) cpu::rmsnorm(&x[size_t(t * H)], L.ffn_norm, float(c.rms_eps), H, &h[size_t(t * H)]);
    ffn(l, toks, x, h, f);
    for (size_t i = 0; i < x.size(); ++i) x[i] += f[i];
  }
  for (auto& [id, n] : plan.added) seqs_.at(id).set_length(seqs_.at(id).length() + n);

  // Final norm and LM head only for the rows the caller wants.
  const std::vector<int64_t>& rows = plan.logit_rows;
  std::vector<float> normed(rows.size() * size_t(H));
  for (size_t r = 0; r < rows.size(); ++r)
    cpu::rmsnorm(&x[size_t(rows[r] * H)], model_.final_norm, float(c.rms_eps), H, &normed[r * size_t(H)]);
  std::vector<float> logits(rows.size() * size_t(V));
  cpu::matmul(pool_, normed.data(), int64_t(rows.size()), model_.lm_head, logits.data());
  return logits;
}

}  // namespace moe
