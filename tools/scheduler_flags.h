// The continuous-batching flags `moe serve` and `moe batch` share: --ctx, --prefill-chunk,
// --step-tokens, --kv-budget.
#pragma once
#include <CLI/CLI.hpp>

#include "serve/scheduler/scheduler.h"

namespace moe::cli {

// kv_default: --kv-budget when not given ("off", or a size or percentage as the flag takes).
void add_scheduler_flags(CLI::App* c, serve::SchedulerOptions& o, const std::string& kv_default);

}  // namespace moe::cli
