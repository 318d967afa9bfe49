#include "runtime/engine.h"

#include <fmt/format.h>

#include <chrono>
#include <stdexcept>

#include "kernels/cpu/kv_convert.h"
#include "kernels/cpu/ops.h"
#include "runtime/batch_plan.h"

namespace moe {

Engine::Engine(const Model& model, EngineOptions opts)
    : model_(model), opts_(opts), pool_(opts.threads), inv_freq_(rope_inv_freq(model.cfg.rope, model.cfg.rotary_dim)) {
  if (opts_.max_seq_len <= 0) opts_.max_seq_len = model.cfg.max_position;
  if (!cpu::kv_dtype_supported(opts_.kv_dtype))
    throw std::invalid_argument(fmt::format("the KV cache cannot hold {}: choose f32, bf16, f16 or fp8", dtype_name(opts_.kv_dtype)));
  if (model.cfg.norm_plus_one) {
    auto add = [&](const WeightView& w) {
      if (w.empty() || offset_norms_.count(w.data)) return;
      std::vector<float> v(size_t(w.rows * w.cols));
      cpu::to_f32(w, 0, w.rows * w.cols, v.data());
      for (float& e : v) e += 1.0f;
      offset_norms_[w.data] = std::move(v);
    };
    add(model.final_norm);
    for (const LayerWeights& L : model.layers) {
      add(L.attn_norm);
      add(L.ffn_norm);
      add(L.attn.q_norm);
      add(L.attn.k_norm);
    }
  }
  if (model.cfg.is_mla()) {
    mla_.reserve(model.layers.size());
    for (const LayerWeights& L : model.layers) mla_.push_back(absorb_mla(model.cfg, L.attn.kv_b));
  }
}

WeightView Engine::norm(const WeightView& w) const {
  const auto it = offset_norms_.find(w.data);
  return it == offset_norms_.end() ? w : WeightView{DType::F32, it->second.data(), w.rows, w.cols};
}

void Engine::norm_rows(const float* x, const WeightView& w, int64_t T, int64_t n, float* out) {
  const WeightView nw = norm(w);
  const float eps = float(model_.cfg.rms_eps);
  const auto rows = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) cpu::rmsnorm(x + t * n, nw, eps, n, out + t * n);
  };
  pool_.parallel_for(T, 16, rows);  // under 2 x 16 rows (decode) the caller runs them alone
}

SeqId Engine::create_sequence() {
  const ModelConfig& c = model_.cfg;
  if (c.n_linear_layers() > 0) {
    const int64_t w = int64_t(c.n_kv_heads) * c.head_dim;
    return seqs_.add(std::make_unique<KvCache>(c.n_layers, w, w, c.linear_layers, c.linear.state_floats(),
                                               opts_.kv_dtype, kv_pages_));
  }
  if (c.is_mla())
    return seqs_.add(std::make_unique<KvCache>(c.n_layers, c.kv_floats_per_layer(), 0, std::vector<bool>{}, 0,
                                               opts_.kv_dtype, kv_pages_));
  const int64_t w = int64_t(c.n_kv_heads) * c.head_dim;
  return seqs_.add(std::make_unique<KvCache>(c.n_layers, w, w, std::vector<bool>{}, 0, opts_.kv_dtype, kv_pages_));
}

SeqId Engine::fork_sequence(SeqId src, int64_t n) {
  const KvCache& from = seqs_.prefix_of(src, n);
  auto kv = std::make_unique<KvCache>(from.prefix(n));
  if (!from.has_state()) return seqs_.add(std::move(kv));
  // The recurrent state exists at the source's length only (and at its snapshots).
  kv->copy_states_from(from, n);
  if (n == from.length()) return seqs_.add(std::move(kv));
  const SeqId id = seqs_.add(std::move(kv));
  rewind(id, n);
  return id;
}

void Engine::truncate(SeqId seq, int64_t n) {
  KvCache& kv = seqs_.prefix_of(seq, n);
  if (!kv.has_state() || n == kv.length()) return seqs_.truncate(seq, n);
  rewind(seq, n);
}

void Engine::rewind(SeqId seq, int64_t n) {
  KvCache& kv = seqs_.at(seq);
  const std::vector<int32_t> redo(kv.tokens().begin() + kv.restore_at_or_before(n), kv.tokens().begin() + n);
  kv.set_length(n - int64_t(redo.size()));
  if (redo.empty()) return;
  const BatchItem item{seq, redo, false};
  forward({&item, 1});
}
void Engine::free_sequence(SeqId seq) { seqs_.erase(seq); }

void Engine::reserve(SeqId seq, int64_t n) {
  seqs_.at(seq).reserve(n);  // a shared page it will write is copied now: kv_bytes() holds it
}
int64_t Engine::length(SeqId seq) const { return seqs_.at(seq).length(); }
int64_t Engine::kv_bytes() const {
  int64_t b = kv_pages_->bytes();  // each page once, however many sequences share it
  seqs_.for_each([&](const KvCache& kv) { b += kv.private_bytes(); });
  return b;
}

std::vector<float> Engine::forward(std::span<const BatchItem> batch) {
  std::vector<float> logits;
  forward(batch, logits);
  return logits;
}

void Engine::forward(std::span<const BatchItem> batch, std::vector<float>& logits) {
  const ModelConfig& c = model_.cfg;
  const int64_t H = c.hidden, V = c.vocab_size;

  // Validate everything before touching any state.
  const BatchPlan plan = plan_batch(batch, [&](SeqId s) { return seqs_.at(s).length(); }, opts_.max_seq_len, V);
  std::vector<Tok> toks;
  for (int64_t t = 0; t < plan.tokens(); ++t)
    toks.push_back({&seqs_.at(plan.seq[size_t(t)]), plan.seq[size_t(t)], plan.pos[size_t(t)]});
  for (auto& [id, n] : plan.added) {
    KvCache& kv = seqs_.at(id);
    kv.reserve(kv.length() + n);  // own pages for the rows the step writes, in parallel
  }
  const int64_t T = int64_t(toks.size());

  std::vector<float>& x = step_x_;  // [T, H] residual stream; resized within its capacity
  x.resize(size_t(T * H));
  for (int64_t t = 0; t < T; ++t) cpu::to_f32(model_.embed, int64_t(plan.ids[size_t(t)]) * H, H, &x[size_t(t * H)]);
  if (c.n_linear_layers() > 0)  // a run that starts a sequence starts from the zero state
    for (int64_t t = 0; t < T; ++t)
      if (toks[size_t(t)].pos == 0) toks[size_t(t)].kv->zero_states();

  std::vector<float>& h = step_h_;  // written by the norm and the FFN at every layer
  std::vector<float>& f = step_f_;
  h.resize(size_t(T * H));
  f.resize(size_t(T * H));
  for (int l = 0; l < c.n_layers; ++l) {
    auto t0 = std::chrono::steady_clock::now();
    if (c.is_linear(l)) linear_attention(l, toks, x);
    else attention(l, toks, x);
    auto t1 = std::chrono::steady_clock::now();
    (c.is_linear(l) ? times_.linear : times_.attention) += std::chrono::duration<double>(t1 - t0).count();
    const LayerWeights& L = model_.layers[size_t(l)];
    norm_rows(x.data(), L.ffn_norm, T, H, h.data());
    ffn(l, toks, x, h, f);
    const double ffn_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    times_.ffn += ffn_s;
    if (L.kind != FfnKind::Dense) times_.moe += ffn_s;
    pool_.parallel_for(T, 16, [&](int64_t t0, int64_t t1) {
      for (int64_t i = t0 * H; i < t1 * H; ++i) x[size_t(i)] += f[size_t(i)];
    });
  }
  for (auto& [id, n] : plan.added) seqs_.at(id).set_length(seqs_.at(id).length() + n);
  for (const BatchItem& item : batch) seqs_.at(item.seq).append_tokens(item.tokens);

  // Final norm and LM head only for the rows the caller wants.
  const std::vector<int64_t>& rows = plan.logit_rows;
  std::vector<float> normed(rows.size() * size_t(H));
  for (size_t r = 0; r < rows.size(); ++r)
    cpu::rmsnorm(&x[size_t(rows[r] * H)], norm(model_.final_norm), float(c.rms_eps), H, &normed[r * size_t(H)]);
  logits.resize(rows.size() * size_t(V));  // every element is written next
  cpu::matmul(pool_, normed.data(), int64_t(rows.size()), model_.lm_head, logits.data());
}

}  // namespace moe
