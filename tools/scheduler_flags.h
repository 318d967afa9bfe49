// The continuous-batching flags `moe serve` and `moe batch` share: --ctx, --prefill-chunk,
// --step-tokens, --kv-budget.
#pragma once
#include <CLI/CLI.hpp>

#include "serve/scheduler/scheduler.h"

namespace moe::cli {

// kv_budget: --kv-budget's text, holding the command's default until the flag replaces it; the
// command turns it into o.kv_budget_bytes with kv_budget_bytes() when it runs.
void add_scheduler_flags(CLI::App* c, serve::SchedulerOptions& o, std::string& kv_budget);
// "off" -> 0; a size; or a percentage of the memory available now. Throws std::invalid_argument
// naming the flag (parse_budget).
uint64_t kv_budget_bytes(const std::string& text);
// "0" -> 0 (off); else a size (parse_size: a percentage is refused). --prefix-cache, --max-body.
uint64_t size_or_off(const std::string& text, const char* flag);

}  // namespace moe::cli
