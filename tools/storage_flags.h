// Flags that choose where a pack's experts live (`--io`, `--ram-budget`, `--stats`) and the
// model opener that honours them. A Hugging Face directory ignores them: it is mmap'd whole.
#pragma once
#include <CLI/CLI.hpp>
#include <filesystem>
#include <string>

#include "runtime/model.h"
#include "storage/tier/tiered_experts.h"

namespace moe::cli {

struct StorageFlags {
  std::string io = "uring";        // uring | pread | mmap
  std::string ram_budget = "100%";  // absolute size or % of the pack's expert bytes
  std::string policy = "lfu";       // RAM tier eviction: lfu | lru (trace-sim: lfu wins on real routing)
  double prefetch_share = 0.25;     // of the budget, for prefetched experts not yet used
  std::string split = "global";     // global: one pool | layer: equal share per MoE layer (docs/trace-sim.md)
  bool stats = false;
};

void add_storage_flags(CLI::App* cmd, StorageFlags& f);

struct OpenModel {
  Model model;
  TieredExperts* tier = nullptr;  // the pack's RAM tier (owned by model.experts); null for HF dirs
};

// Loads a directory or pack. For a pack, experts go through a TieredExperts with the chosen
// reader and budget.
std::unique_ptr<OpenModel> open_model(const std::filesystem::path& path, const StorageFlags& f);

// Prints the tier's statistics (and process memory) to stderr when --stats was given; with
// `extra` (prefetch and routing figures) after them.
void print_stats(const OpenModel& m, const StorageFlags& f, uint64_t tokens, const std::string& extra = {});

}  // namespace moe::cli
