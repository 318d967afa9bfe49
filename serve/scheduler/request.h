// One generation request as the scheduler sees it (the HTTP layer and batch jobs build it from
// an OpenAI request), and the events it streams back.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace moe::serve {

struct SamplingOptions {
  float temperature = 1.0f;  // OpenAI's default; 0 is greedy
  float top_p = 1.0f;
  int top_k = 0;             // 0: off
  float min_p = 0.0f;
  float presence_penalty = 0.0f;   // OpenAI rule over the generated tokens:
  float frequency_penalty = 0.0f;  // logit -= count * frequency + (count > 0) * presence
  std::vector<std::pair<int32_t, float>> logit_bias;  // added to the logits before sampling
  std::optional<uint64_t> seed;    // none: a random seed
};

// The hook for constrained decoding (JSON schemas, required tool calls): it masks the logits
// before each draw and learns each drawn token. Runs on the scheduler thread.
class LogitsProcessor {
 public:
  virtual ~LogitsProcessor() = default;
  // Sets the logits of tokens that may not come next to -infinity.
  virtual void apply(std::span<float> logits) = 0;
  virtual void accept(int32_t token) = 0;
  // True when the constraint is complete and nothing more may be generated.
  virtual bool done() const { return false; }
};

struct GenerationRequest {
  std::string id;                  // for logs ("chatcmpl-...")
  std::vector<int32_t> prompt;     // never empty
  int max_tokens = 16;             // generated tokens at most (the caller checks the context)
  SamplingOptions sampling;
  std::vector<std::string> stop;   // stop strings: cut from the text, finish "stop"
  std::vector<int32_t> stop_ids;   // stop tokens (EOS, <|im_end|>): not in the text, finish "stop"
  int logprobs = -1;               // -1: none; else the generated tokens' logprobs with this many top alternatives
  bool prompt_logprobs = false;    // also the prompt tokens' logprobs (completions with echo)
  bool event_per_token = false;    // one event per drawn token even when it adds no text (benchmarks)
  std::shared_ptr<LogitsProcessor> constraint;
};

struct TokenLogprob {
  int32_t token = 0;
  std::string text;               // the token's text (may be a partial UTF-8 character: bytes as decoded)
  float logprob = 0.0f;           // log-softmax of the model's raw logits
  std::vector<std::pair<int32_t, float>> top;  // best alternatives, best first
};

enum class FinishReason { none, stop, length, cancelled, error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", ...

struct GenerationEvent {
  std::string text;                          // new final text (whole UTF-8 characters, stop strings cut)
  std::vector<TokenLogprob> logprobs;        // tokens drawn since the last event (when asked)
  std::vector<TokenLogprob> prompt_logprobs; // first event only, when asked (first token: no logprob)
  bool first = false;                        // the first event (time to first token)
  FinishReason finish = FinishReason::none;  // set on the last event only
  std::string error;                         // finish == error: what went wrong
  // On the last event:
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;      // prompt tokens whose KV came from the prefix cache
  int64_t completion_tokens = 0;
};

}  // namespace moe::serve
