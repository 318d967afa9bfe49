#include "tools/scheduler_flags.h"

#include "storage/byte_size.h"
#include "storage/process_memory.h"

namespace moe::cli {

void add_scheduler_flags(CLI::App* c, serve::SchedulerOptions& o, std::string& kv_budget) {
  c->add_option("--ctx", o.context, "Context length per sequence, prompt + completion (0: the model's maximum)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 24))
      ->capture_default_str();
  c->add_option("--prefill-chunk", o.prefill_chunk, "Prompt tokens per sequence per step")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  c->add_option("--step-tokens", o.step_tokens, "Tokens per engine step, decodes and prefill chunks together")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24))
      ->capture_default_str();
  c->add_option("--kv-budget", kv_budget,
                "KV cache the running sequences may reserve (prompt + max_tokens each; a request without max_tokens "
                "reserves the rest of --ctx); more requests wait. The prefix cache lives within it too and is "
                "evicted before a request waits. A size, a percentage of the memory available at start, or off")
      ->type_name("SIZE")
      ->capture_default_str();
}

uint64_t kv_budget_bytes(const std::string& text) {
  return text == "off" ? 0 : parse_budget(text, available_memory_bytes(), "--kv-budget");
}

uint64_t size_or_off(const std::string& text, const char* flag) { return text == "0" ? 0 : parse_size(text, flag); }

}  // namespace moe::cli
