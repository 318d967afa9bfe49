// Batched generation: prefill every prompt in one pass, then decode all unfinished
// sequences together, one token each per step.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/engine.h"
#include "runtime/sampler.h"

namespace moe {

struct GenerateOptions {
  int max_new_tokens = 64;
  SamplingParams sampling;          // sequence i uses seed sampling.seed + i
  std::vector<int32_t> stop_ids;    // end a sequence when it samples one of these
  // Called with a copy of sequence i's logits before each draw (constrained decoding sets the
  // tokens that may not come next to -infinity); the drawn token reaches on_token.
  std::function<void(size_t i, std::span<float> logits)> constrain;
};

struct GenerateStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// Returns the generated tokens of each prompt (stop token included when hit).
// on_token(prompt_index, token) is called as tokens are produced.
std::vector<std::vector<int32_t>> generate(InferenceEngine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                           const GenerateOptions& opts,
                                           const std::function<void(size_t, int32_t)>& on_token = {},
                                           GenerateStats* stats = nullptr);

}  // namespace moe
