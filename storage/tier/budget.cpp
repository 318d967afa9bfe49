#include "storage/tier/budget.h"

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "storage/io/expert_reader.h"

namespace moe {

uint64_t expert_cache_bytes(const ExpertRecordRef& r) {
  return r.compressed ? align_up(r.raw_bytes) : std::max(r.padded_bytes, align_up(r.stored_bytes));
}

uint64_t total_expert_bytes(const ExpertCatalog& catalog) {
  uint64_t total = 0;
  for (int l = 0; l < catalog.n_layers(); ++l)
    for (int e = 0; e < catalog.n_experts(l); ++e) total += expert_cache_bytes(catalog.record(l, e));
  return total;
}

uint64_t check_budget(uint64_t budget, const ExpertCatalog& catalog, int top_k) {
  const int k = std::max(top_k, 1);
  uint64_t need = 0, largest = 0;
  int need_k = 0;
  std::vector<uint64_t> sizes;
  for (int l = 0; l < catalog.n_layers(); ++l) {
    sizes.clear();
    for (int e = 0; e < catalog.n_experts(l); ++e) sizes.push_back(expert_cache_bytes(catalog.record(l, e)));
    if (sizes.empty()) continue;
    std::sort(sizes.begin(), sizes.end(), std::greater<>());
    const int kl = std::min(k, int(sizes.size()));
    uint64_t sum = 0;
    for (int i = 0; i < kl; ++i) sum += sizes[size_t(i)];
    if (sum > need) need = sum, largest = sizes[0], need_k = kl;
  }
  if (budget >= need) return need;
  if (top_k <= 1)
    throw std::invalid_argument(fmt::format("ram budget {} is smaller than one expert ({}); raise --ram-budget",
                                            format_bytes(budget), format_bytes(largest)));
  throw std::invalid_argument(fmt::format("ram budget {} holds fewer experts than one layer's top-k ({} x {}); raise --ram-budget",
                                          format_bytes(budget), need_k, format_bytes(largest)));
}

}  // namespace moe
