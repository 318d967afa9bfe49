// Shared by the scheduler tests: the tiny model opened once, and a request run to its end.
#pragma once
#include <gtest/gtest.h>

#include <memory>

#include "runtime/generate.h"
#include "serve/scheduler/scheduler.h"
#include "session/session.h"

namespace moe::test {

inline Session& tiny_session() {
  static std::unique_ptr<Session> s = [] {
    SessionOptions o;
    o.device.threads = 1;
    return std::make_unique<Session>(std::filesystem::path(MOE_SOURCE_DIR) / "models/tiny-moe", o);
  }();
  return *s;
}

struct Result {
  std::string text;
  std::vector<int32_t> tokens;  // from the logprobs (requests ask for them)
  serve::FinishReason finish = serve::FinishReason::none;
  std::string error;
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  int events = 0, first_events = 0;
  std::vector<serve::TokenLogprob> prompt_logprobs;
};

inline Result collect(serve::RequestHandle& h) {
  Result r;
  for (;;) {
    auto e = h.next(std::chrono::seconds(60));
    if (!e) {
      ADD_FAILURE() << "no event within 60 s";
      return r;
    }
    ++r.events;
    r.first_events += e->first;
    r.text += e->text;
    for (const auto& lp : e->logprobs) r.tokens.push_back(lp.token);
    if (e->first) r.prompt_logprobs = e->prompt_logprobs;
    if (e->finish != serve::FinishReason::none) {
      r.finish = e->finish;
      r.error = e->error;
      r.prompt_tokens = e->prompt_tokens;
      r.cached_tokens = e->cached_tokens;
      r.completion_tokens = e->completion_tokens;
      EXPECT_FALSE(h.next(std::chrono::milliseconds(1)).has_value()) << "an event after the last";
      return r;
    }
  }
}

// Stats after the step that finished the last collected request has fully ended (its final
// event goes out inside that step).
inline serve::SchedulerStats settled_stats(serve::Scheduler& s) {
  s.run_between_steps([] {});
  return s.stats();
}

inline serve::GenerationRequest request(std::vector<int32_t> prompt, int max_tokens, float temperature, uint64_t seed) {
  serve::GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = temperature;
  r.sampling.seed = seed;
  r.logprobs = 0;  // the drawn tokens come back with their logprobs
  return r;
}

}  // namespace moe::test
