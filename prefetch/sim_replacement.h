// Inside the cache simulator: who leaves a full pool (a per-layer cache, or the one global
// cache). Two kinds: the RAM tier's own EvictionPolicy, one instance per pool (cache_sim.cpp),
// and Belady's optimum, which knows the future access sequence (belady.cpp).
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "storage/tier/eviction_policy.h"

namespace moe {

class SimReplacement {
 public:
  virtual ~SimReplacement() = default;
  // `pos`: the index of this access in the trace's flat access sequence; a prefetch, which
  // is not an access, passes SIZE_MAX.
  virtual void on_insert(int pool, ExpertKey k, size_t pos) = 0;
  virtual void on_access(int pool, ExpertKey k, size_t pos) = 0;
  virtual void on_evict(int pool, ExpertKey k) = 0;
  virtual std::optional<ExpertKey> choose_victim(int pool, const std::function<bool(ExpertKey)>& evictable) = 0;
};

// "lru" | "lfu" via make_policy, one policy per pool.
std::unique_ptr<SimReplacement> make_policy_replacement(const std::string& policy, int n_pools);
// Evicts the resident expert whose next access in `accesses` (every access of the replay,
// in order) is farthest away; never again counts as infinitely far.
std::unique_ptr<SimReplacement> make_belady_replacement(std::span<const ExpertKey> accesses, int n_pools);

}  // namespace moe
