#include "runtime/engine.h"

#include <fmt/format.h>

#include <stdexcept>

#include "kernels/cpu/ops.h"

namespace moe {

Engine::Engine(const Model& model, EngineOptions opts)
    : model_(model), opts_(opts), pool_(opts.threads), inv_freq_(rope_inv_freq(model.cfg.rope, model.cfg.head_dim)) {
  if (opts_.max_seq_len <= 0) opts_.max_seq_len = model.cfg.max_position;
}

SeqId Engine::create_sequence() {
  const ModelConfig& c = model_.cfg;
  seqs_[next_id_] = std::make_unique<KvCache>(c.n_layers, int64_t(c.n_kv_heads) * c.head_dim);
  return next_id_++;
}

// The sequence's cache; a clear error for an id that was never created or already freed.
template <class Map>
static auto& lookup(Map& m, SeqId s) {
  auto it = m.find(s);
  if (it == m.end()) throw std::invalid_argument(fmt::format("unknown sequence id {}", s));
  return *it->second;
}

SeqId Engine::fork_sequence(SeqId src, int64_t n) {
  const KvCache& s = lookup(seqs_, src);
  if (n < 0 || n > s.length())
    throw std::invalid_argument(fmt::format("fork_sequence: prefix {} exceeds sequence {} length {}", n, src, s.length()));
  seqs_[next_id_] = std::make_unique<KvCache>(s.prefix(n));
  return next_id_++;
}

void Engine::truncate(SeqId seq, int64_t n) {
  KvCache& s = lookup(seqs_, seq);
  if (n < 0 || n > s.length())
    throw std::invalid_argument(fmt::format("truncate: {} exceeds sequence {} length {}", n, seq, s.length()));
  s.set_length(n);
}

void Engine::free_sequence(SeqId seq) {
  lookup(seqs_, seq);
  seqs_.erase(seq);
}

int64_t Engine::length(SeqId seq) const { return lookup(seqs_, seq).length(); }

int64_t Engine::kv_bytes() const {
  int64_t b = 0;
  for (const auto& [_, kv] : seqs_) b += kv->bytes();
  return b;
}

std::vector<float> Engine::forward(std::span<const BatchItem> batch) {
  const ModelConfig& c = model_.cfg;
  const int64_t H = c.hidden, V = c.vocab_size;

  // Validate everything before touching any state.
  std::vector<Tok> toks;
  std::map<SeqId, int64_t> added;
  for (const BatchItem& it : batch) {
    KvCache& kv = lookup(seqs_, it.seq);
    if (it.tokens.empty()) throw std::invalid_argument(fmt::format("sequence {}: no tokens to process", it.seq));
    const int64_t start = kv.length() + added[it.seq];
    if (start + int64_t(it.tokens.size()) > opts_.max_seq_len)
      throw std::invalid_argument(fmt::format("sequence {}: {} tokens exceed the maximum length {}", it.seq,
                                              start + int64_t(it.tokens.size()), opts_.max_seq_len));
    for (size_t i = 0; i < it.tokens.size(); ++i) {
      if (it.tokens[i] < 0 || it.tokens[i] >= V)
        throw std::invalid_argument(fmt::format("token id {} is outside the vocabulary [0, {})", it.tokens[i], V));
      toks.push_back({&kv, it.seq, int32_t(start + int64_t(i))});
    }
    added[it.seq] += int64_t(it.tokens.size());
  }
  for (auto& [id, n] : added) {
    KvCache& kv = *seqs_[id];
    kv.reserve(kv.length() + n);
  }
  const int64_t T = int64_t(toks.size());

  std::vector<float> x(size_t(T * H));  // [T, H] residual stream
  {
    int64_t t = 0;
    for (const BatchItem& it : batch)
      for (int32_t id : it.tokens) cpu::to_f32(model_.embed, int64_t(id) * H, H, &x[size_t(t++ * H)]);
  }

  std::vector<float> h(size_t(T * H)), f(size_t(T * H));
  for (int l = 0; l < c.n_layers; ++l) {
    attention(l, toks, x);
    const LayerWeights& L = model_.layers[size_t(l)];
    for (int64_t t = 0; t < T; ++t) cpu::rmsnorm(&x[size_t(t * H)], L.ffn_norm, float(c.rms_eps), H, &h[size_t(t * H)]);
    ffn(l, toks, x, h, f);
    for (size_t i = 0; i < x.size(); ++i) x[i] += f[i];
  }
  for (auto& [id, n] : added) seqs_[id]->set_length(seqs_[id]->length() + n);

  // Final norm and LM head only for the rows the caller wants.
  std::vector<int64_t> rows;
  {
    int64_t t = 0;
    for (const BatchItem& it : batch) {
      const int64_t n = int64_t(it.tokens.size());
      if (it.all_logits)
        for (int64_t i = 0; i < n; ++i) rows.push_back(t + i);
      else
        rows.push_back(t + n - 1);
      t += n;
    }
  }
  std::vector<float> normed(rows.size() * size_t(H));
  for (size_t r = 0; r < rows.size(); ++r)
    cpu::rmsnorm(&x[size_t(rows[r] * H)], model_.final_norm, float(c.rms_eps), H, &normed[r * size_t(H)]);
  std::vector<float> logits(rows.size() * size_t(V));
  cpu::matmul(pool_, normed.data(), int64_t(rows.size()), model_.lm_head, logits.data());
  return logits;
}

}  // namespace moe
