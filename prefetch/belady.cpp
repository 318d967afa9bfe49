// Belady's MIN for the cache simulator: on a miss with a full pool, evict the resident
// expert used again farthest in the future. Next uses come from one backward pass over the
// access sequence; each pool keeps its residents ordered by next use, so a victim is the
// last entry that is evictable (skipping only the pinned experts of the current step).
#include <cstdint>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "prefetch/sim_replacement.h"

namespace moe {

namespace {

constexpr size_t kNever = SIZE_MAX;

class Belady final : public SimReplacement {
 public:
  Belady(std::span<const ExpertKey> accesses, int n_pools) : next_(accesses.size()), by_next_(size_t(n_pools)) {
    std::unordered_map<uint64_t, size_t> later;  // key -> its next access after the current position
    for (size_t i = accesses.size(); i-- > 0;) {
      auto [it, fresh] = later.try_emplace(accesses[i].packed(), i);
      next_[i] = fresh ? kNever : it->second;
      it->second = i;
    }
  }

  void on_insert(int pool, ExpertKey k, size_t pos) override { on_access(pool, k, pos); }
  void on_access(int pool, ExpertKey k, size_t pos) override {
    const size_t next = pos < next_.size() ? next_[pos] : kNever;
    auto [it, fresh] = where_.try_emplace(k.packed(), next);
    if (!fresh) by_next_[size_t(pool)].erase({it->second, it->first});
    it->second = next;
    by_next_[size_t(pool)].insert({next, it->first});
  }
  void on_evict(int pool, ExpertKey k) override {
    auto it = where_.find(k.packed());
    if (it == where_.end()) return;
    by_next_[size_t(pool)].erase({it->second, it->first});
    where_.erase(it);
  }
  std::optional<ExpertKey> choose_victim(int pool, const std::function<bool(ExpertKey)>& evictable) override {
    const auto& s = by_next_[size_t(pool)];
    for (auto it = s.rbegin(); it != s.rend(); ++it) {
      const ExpertKey k{int32_t(uint32_t(it->second >> 32)), int32_t(uint32_t(it->second))};
      if (evictable(k)) return k;
    }
    return std::nullopt;
  }

 private:
  std::vector<size_t> next_;                                    // [accesses] position of the same key's next access
  std::unordered_map<uint64_t, size_t> where_;                  // resident key -> its next access
  std::vector<std::set<std::pair<size_t, uint64_t>>> by_next_;  // [pool] (next access, key), ascending
};

}  // namespace

std::unique_ptr<SimReplacement> make_belady_replacement(std::span<const ExpertKey> accesses, int n_pools) {
  return std::make_unique<Belady>(accesses, n_pools);
}

}  // namespace moe
