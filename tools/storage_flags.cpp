#include "tools/storage_flags.h"

#include <cstdio>

#include "runtime/pack_model.h"
#include "storage/io/make_reader.h"
#include "storage/pack_file.h"
#include "storage/tier/budget.h"
#include "storage/tier/process_memory.h"

namespace moe::cli {

void add_storage_flags(CLI::App* cmd, StorageFlags& f) {
  cmd->add_option("--io", f.io, "How a pack's experts are read: uring (O_DIRECT), pread or mmap")
      ->check(CLI::IsMember({"uring", "io_uring", "pread", "mmap"}))
      ->capture_default_str();
  cmd->add_option("--ram-budget", f.ram_budget,
                  "RAM for a pack's experts: a size (6GiB, 512MiB) or a percentage of all expert bytes (50%)")
      ->capture_default_str();
  cmd->add_option("--policy", f.policy, "RAM tier eviction policy: lru or lfu (frequency with decay)")
      ->check(CLI::IsMember({"lru", "lfu"}))
      ->capture_default_str();
  cmd->add_option("--prefetch-share", f.prefetch_share,
                  "Share of --ram-budget that prefetched, not yet used experts may hold")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--cache-split", f.split, "RAM budget split: layer (an equal share per MoE layer) or global (one pool)")
      ->check(CLI::IsMember({"layer", "global"}))
      ->capture_default_str();
  cmd->add_flag("--stats", f.stats, "Print expert-cache hits, misses, disk bytes and stall time per token");
}

std::unique_ptr<OpenModel> open_model(const std::filesystem::path& path, const StorageFlags& f) {
  auto out = std::make_unique<OpenModel>();
  out->model = load_model(path);
  if (!std::filesystem::is_regular_file(path)) return out;
  auto pack = std::make_shared<const PackFile>(path);
  TierOptions opts;
  opts.budget_bytes = parse_budget(f.ram_budget, total_expert_bytes(*pack));
  opts.top_k = out->model.cfg.router.top_k;
  opts.policy = make_policy(f.policy);
  opts.prefetch_share = f.prefetch_share;
  opts.split_per_layer = f.split == "layer";
  auto tier = std::make_unique<TieredExperts>(pack, make_reader(f.io, path), std::move(opts));
  out->tier = tier.get();
  out->model.experts = std::move(tier);
  return out;
}

void print_stats(const OpenModel& m, const StorageFlags& f, uint64_t tokens, const std::string& extra) {
  if (!f.stats) return;
  if (m.tier) std::fprintf(stderr, "%s", format_tier_stats(m.tier->stats(), tokens).c_str());
  std::fprintf(stderr, "%s", extra.c_str());
  const ProcessMemory pm = read_process_memory();
  std::fprintf(stderr, "process: rss %s, peak rss %s\n", format_bytes(pm.rss_bytes).c_str(),
               format_bytes(pm.peak_rss_bytes).c_str());
}

}  // namespace moe::cli
