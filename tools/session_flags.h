// The flags that fill a SessionOptions (session/session_options.h), shared by the commands
// that open a model: where a pack's experts live (--io, --ram-budget, ...), which engine runs
// it (--device, --vram-budget, ...) and expert prefetch (--prefetch, --lookahead, ...).
#pragma once
#include <CLI/CLI.hpp>

#include "session/session_options.h"

namespace moe::cli {

void add_storage_flags(CLI::App* cmd, StorageOptions& s);
// --threads is not in add_device_flags: every command that runs a model adds it with this
// (help and bounds shared). At most kMaxThreads: more than any CPU has, and each thread costs
// a stack, so a typo like 100000 fails at once instead of exhausting the process.
constexpr int kMaxThreads = 1024;
CLI::Option* add_threads_flag(CLI::App* cmd, int& threads);
void add_device_flags(CLI::App* cmd, DeviceOptions& d);
// --seed: a uint64; a negative or too large value is an error (CLI11 alone would wrap it).
CLI::Option* add_seed_flag(CLI::App* cmd, uint64_t& seed, const std::string& help);
// list: --prefetch takes a comma-separated list of modes (moe bench compares them).
void add_prefetch_flags(CLI::App* cmd, PrefetchSettings& p, bool list = false);
// --stats: print the session's figures after the command.
void add_stats_flag(CLI::App* cmd, bool& stats);

}  // namespace moe::cli
