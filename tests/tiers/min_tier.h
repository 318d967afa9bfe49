// Test helpers: a pack's experts behind a RAM tier at the least budget it accepts (one layer's
// top-k of the largest record), so every forward evicts and re-reads; or one that holds them all.
#pragma once
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>

#include "storage/io/make_reader.h"
#include "storage/pack_file.h"
#include "storage/tier/budget.h"
#include "storage/tier/tiered_experts.h"

namespace moe::test {

inline std::unique_ptr<TieredExperts> min_budget_tier(const std::filesystem::path& pack_path, const std::string& io,
                                                      int top_k) {
  auto pack = std::make_shared<const PackFile>(pack_path);
  uint64_t largest = 0;
  for (int l = 0; l < pack->n_layers(); ++l)
    for (int e = 0; e < pack->n_experts(l); ++e) largest = std::max(largest, expert_cache_bytes(pack->record(l, e)));
  TierOptions o;
  o.top_k = top_k;
  o.budget_bytes = uint64_t(top_k) * largest;  // the least check_budget accepts
  return std::make_unique<TieredExperts>(pack, make_reader(io, pack_path), std::move(o));
}

// The same pack with every expert fitting the RAM tier ("100%", the CLI's default budget).
inline std::unique_ptr<TieredExperts> full_tier(const std::filesystem::path& pack_path, const std::string& io, int top_k) {
  auto pack = std::make_shared<const PackFile>(pack_path);
  TierOptions o;
  o.top_k = top_k;
  o.budget_bytes = total_expert_bytes(*pack);
  return std::make_unique<TieredExperts>(pack, make_reader(io, pack_path), std::move(o));
}

}  // namespace moe::test
