// One request's next-token choice: the OpenAI adjustments (logit_bias, presence and frequency
// penalties over the generated tokens), then the constraint's mask, then moe::Sampler
// (temperature, top-k, top-p, min-p, the request's own seeded generator). Logprobs are of the
// model's raw distribution, before any adjustment.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "runtime/sampler.h"
#include "serve/scheduler/request.h"

namespace moe::serve {

class TokenSampler {
 public:
  // Throws std::invalid_argument for out-of-range values or logit_bias ids outside the vocab.
  TokenSampler(const SamplingOptions& o, int64_t vocab, std::shared_ptr<LogitsProcessor> constraint);
  // Draws the next token from one row of logits (copied; the row is not changed).
  int32_t sample(std::span<const float> logits);
  uint64_t seed() const { return seed_; }

 private:
  SamplingOptions o_;
  int64_t vocab_;
  std::shared_ptr<LogitsProcessor> constraint_;
  uint64_t seed_;
  Sampler sampler_;
  std::unordered_map<int32_t, int64_t> counts_;  // generated tokens, for the penalties
  std::vector<float> work_;
};

// log-softmax of `logits` at `token`, and the `top` best tokens with theirs.
TokenLogprob token_logprob(std::span<const float> logits, int32_t token, int top);

}  // namespace moe::serve
