#include "serve/scheduler/grammar_constraint.h"

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
  // Whole words at a time: most are all-zero (nothing allowed) or all-one (a string's content).
  for (size_t w = 0; w < mask_.size(); ++w) {
    const uint64_t bits = mask_[w];
    const size_t base = w * 64;
    const size_t end = std::min(base + 64, std::min(vocab, logits.size()));
    if (bits == ~uint64_t(0)) continue;
    for (size_t i = base; i < end; ++i)
      if (!((bits >> (i - base)) & 1)) logits[i] = ninf;
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
