#include "tools/scheduler_flags.h"

namespace moe::cli {

void add_scheduler_flags(CLI::App* c, serve::SchedulerOptions& o) {
  c->add_option("--ctx", o.context, "Context length per sequence, prompt + completion (0: the model's maximum)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 24))
      ->capture_default_str();
  c->add_option("--prefill-chunk", o.prefill_chunk, "Prompt tokens per sequence per step")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  c->add_option("--step-tokens", o.step_tokens, "Tokens per engine step, decodes and prefill chunks together")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24))
      ->capture_default_str();
}

}  // namespace moe::cli
