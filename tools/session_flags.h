// The flags that fill a SessionOptions (session/session_options.h), shared by the commands
// that open a model: where a pack's experts live (--io, --ram-budget, ...), which engine runs
// it (--device, --vram-budget, ...) and expert prefetch (--prefetch, --lookahead, ...).
#pragma once
#include <CLI/CLI.hpp>

#include "session/session_options.h"

namespace moe::cli {

void add_storage_flags(CLI::App* cmd, StorageOptions& s);
// --threads is not here: every command that runs a model has its own.
void add_device_flags(CLI::App* cmd, DeviceOptions& d);
// list: --prefetch takes a comma-separated list of modes (moe bench compares them).
void add_prefetch_flags(CLI::App* cmd, PrefetchSettings& p, bool list = false);
// --stats: print the session's figures after the command.
void add_stats_flag(CLI::App* cmd, bool& stats);

}  // namespace moe::cli
