#include "tools/scheduler_flags.h"

#include "storage/byte_size.h"
#include "storage/process_memory.h"

namespace moe::cli {

void add_scheduler_flags(CLI::App* c, serve::SchedulerOptions& o, const std::string& kv_default) {
  c->add_option("--ctx", o.context, "Context length per sequence, prompt + completion (0: the model's maximum)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 24))
      ->capture_default_str();
  c->add_option("--prefill-chunk", o.prefill_chunk, "Prompt tokens per sequence per step")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  c->add_option("--step-tokens", o.step_tokens, "Tokens per engine step, decodes and prefill chunks together")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24))
      ->capture_default_str();
  // A percentage is of the memory available at start.
  const uint64_t avail = available_memory_bytes();
  const auto parse = [avail](const std::string& s) { return s == "off" ? uint64_t(0) : parse_budget(s, avail); };
  o.kv_budget_bytes = parse(kv_default);
  c->add_option_function<std::string>(
       "--kv-budget", [&o, parse](const std::string& s) { o.kv_budget_bytes = parse(s); },
       "KV cache the running sequences may reserve (prompt + max_tokens each; a request without max_tokens reserves "
       "the rest of --ctx); more requests wait. A size, a percentage of the memory available at start, or off "
       "(default: " + kv_default + ")")
      ->type_name("SIZE");
}

}  // namespace moe::cli
