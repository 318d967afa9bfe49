// The continuous-batching flags `moe serve` and `moe batch` share: --ctx, --prefill-chunk,
// --step-tokens, --kv-budget.
#pragma once
#include <CLI/CLI.hpp>

#include "serve/scheduler/scheduler.h"

namespace moe::cli {

void add_scheduler_flags(CLI::App* c, serve::SchedulerOptions& o);

}  // namespace moe::cli
