#include "serve/scheduler/grammar_constraint.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <limits>

#include "serve/grammar/token_vocab.h"

namespace moe::serve {

GrammarConstraint::GrammarConstraint(std::shared_ptr<const grammar::CompiledGrammar> g) : g_(g), m_(std::move(g)) {
  mask_.resize(m_.mask_words());
}

void GrammarConstraint::apply(std::span<float> logits) {
  const auto t0 = std::chrono::steady_clock::now();
  m_.fill_mask(mask_);
  const float ninf = -std::numeric_limits<float>::infinity();
  const size_t vocab = size_t(g_->vocab().size());
  // Whole words at a time: most are all-zero (nothing allowed) or all-one (a string's content);
  // in the others only the disallowed bits are visited.
  const size_t n = std::min(vocab, logits.size());
  for (size_t w = 0; w * 64 < n; ++w) {
    const size_t base = w * 64;
    uint64_t off = ~mask_[w];
    if (base + 64 > n) off &= (uint64_t(1) << (n - base)) - 1;
    if (off == ~uint64_t(0)) {
      std::fill_n(logits.begin() + ptrdiff_t(base), 64, ninf);
      continue;
    }
    for (; off; off &= off - 1) logits[base + size_t(std::countr_zero(off))] = ninf;
  }
  // Rows past the tokenizer's vocabulary (padding in the embedding) never come out.
  for (size_t i = vocab; i < logits.size(); ++i) logits[i] = ninf;
  mask_seconds_.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

void GrammarConstraint::accept(int32_t token) {
  if (!m_.accept_token(token)) broken_ = true;
}

bool GrammarConstraint::done() const { return m_.finished(); }

}  // namespace moe::serve
