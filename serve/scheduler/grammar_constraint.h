// A grammar as the scheduler's LogitsProcessor: before each draw the tokens that would leave the
// grammar's language get -infinity; each drawn token advances the matcher. (A reasoning model's
// free thinking block is part of the grammar: see with_reasoning in constraint_spec.h.)
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "serve/grammar/matcher.h"
#include "serve/scheduler/request.h"

namespace moe::serve {

class GrammarConstraint final : public LogitsProcessor {
 public:
  explicit GrammarConstraint(std::shared_ptr<const grammar::CompiledGrammar> g);
  void apply(std::span<float> logits) override;
  void accept(int32_t token) override;
  bool done() const override;

  // Seconds spent computing and applying each mask (one entry per constrained draw).
  const std::vector<double>& mask_seconds() const { return mask_seconds_; }
  // A drawn token the grammar refused (never, unless the sampler ignored the mask).
  bool broken() const { return broken_; }
  const grammar::CompiledGrammar& compiled() const { return *g_; }

 private:
  std::shared_ptr<const grammar::CompiledGrammar> g_;
  grammar::GrammarMatcher m_;
  bool broken_ = false;
  std::vector<uint64_t> mask_;
  std::vector<double> mask_seconds_;
};

}  // namespace moe::serve
