// Driving a grammar constraint without a model, for property tests and the mask benchmark
// (`moe grammar`): random documents drawn through the mask, and whether a given token sequence
// passes it token by token.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "serve/grammar/matcher.h"

namespace moe::serve {

struct RandomDocument {
  std::string text;
  int tokens = 0;
  bool finished = false;    // an end token was drawn (the text is a whole sentence)
  bool empty_mask = false;  // a mask allowed nothing (a bug: never expected)
  std::vector<double> mask_seconds;  // per draw: computing and applying the mask to the logits
};

// Draws up to max_tokens tokens. Each draw applies the mask to random logits (as a decode step
// would), then picks among the allowed tokens: first a byte uniformly among the allowed tokens'
// first bytes (end tokens count as one more "byte"), then a token uniformly among those, so
// closing quotes and brackets come up often enough for documents to finish.
RandomDocument random_document(const std::shared_ptr<const grammar::CompiledGrammar>& g, uint64_t seed,
                               int max_tokens);

struct TokenCheck {
  bool ok = true;
  size_t failed_at = 0;  // index of the first token outside the mask (== size: the end was refused)
  std::string error;
};
// Each token must be allowed by the mask in turn, and an end token allowed after the last.
TokenCheck check_tokens(const std::shared_ptr<const grammar::CompiledGrammar>& g, std::span<const int32_t> ids);

}  // namespace moe::serve
