#include "serve/scheduler/grammar_explore.h"

#include <fmt/format.h>

#include <cmath>
#include <random>

#include "serve/grammar/token_vocab.h"
#include "serve/scheduler/grammar_constraint.h"

namespace moe::serve {

RandomDocument random_document(const std::shared_ptr<const grammar::CompiledGrammar>& g, uint64_t seed,
                               int max_tokens) {
  const grammar::TokenVocab& v = g->vocab();
  GrammarConstraint c(g);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> logits(size_t(v.size()));
  std::vector<std::vector<int32_t>> by_byte(257);
  RandomDocument d;
  for (int step = 0; step < max_tokens; ++step) {
    for (float& x : logits) x = normal(rng);
    c.apply(logits);
    for (auto& b : by_byte) b.clear();
    for (int32_t t = 0; t < v.size(); ++t) {
      if (!std::isfinite(logits[size_t(t)])) continue;
      by_byte[v.is_end(t) ? 256 : uint8_t(v.bytes(t)[0])].push_back(t);
    }
    std::vector<int> bytes;
    for (int b = 0; b < 257; ++b)
      if (!by_byte[size_t(b)].empty()) bytes.push_back(b);
    if (bytes.empty()) {
      d.empty_mask = true;
      break;
    }
    const auto& pool = by_byte[size_t(bytes[rng() % bytes.size()])];
    const int32_t t = pool[rng() % pool.size()];
    c.accept(t);
    ++d.tokens;
    if (v.is_end(t)) {
      d.finished = true;
      break;
    }
    d.text += v.bytes(t);
  }
  d.mask_seconds = c.mask_seconds();
  return d;
}

TokenCheck check_tokens(const std::shared_ptr<const grammar::CompiledGrammar>& g, std::span<const int32_t> ids) {
  grammar::GrammarMatcher m(g);
  std::vector<uint64_t> mask(m.mask_words());
  auto allowed = [&](int32_t t) { return t >= 0 && t < g->vocab().size() && ((mask[size_t(t) >> 6] >> (t & 63)) & 1); };
  TokenCheck r;
  for (size_t i = 0; i < ids.size(); ++i) {
    m.fill_mask(mask);
    if (!allowed(ids[i]) || !m.accept_token(ids[i])) {
      r.ok = false;
      r.failed_at = i;
      r.error = fmt::format("token {} ({:?}) at {} is not allowed", ids[i],
                            ids[i] >= 0 && ids[i] < g->vocab().size() ? g->vocab().bytes(ids[i]) : "", i);
      return r;
    }
  }
  m.fill_mask(mask);
  bool end_ok = false;
  for (int32_t e : g->vocab().end_tokens()) end_ok |= allowed(e);
  if (!end_ok) {
    r.ok = false;
    r.failed_at = ids.size();
    r.error = "the text is not complete: no end token is allowed after it";
  }
  return r;
}

}  // namespace moe::serve
