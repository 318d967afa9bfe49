// Which resident expert leaves the RAM tier when a new one needs room. The tier tells the
// policy what happens (insert, access, evict) and asks it for a victim; pinning is the tier's
// business, passed as a predicate. Calls come under the tier's lock: policies need no locking
// of their own, and must be cheap in on_access (every cache hit calls it).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/expert_key.h"

namespace moe {

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual void on_insert(ExpertKey k) = 0;  // k became resident for a use (a demand miss)
  // k became resident ahead of its use (a prefetch; the use, if any, comes as on_access).
  virtual void on_prefetch_insert(ExpertKey k) { on_insert(k); }
  virtual void on_access(ExpertKey k) = 0;  // k was acquired while resident (a hit)
  virtual void on_evict(ExpertKey k) = 0;   // k left (chosen by choose_victim or dropped)
  // A resident expert for which `evictable` holds (pinned and loading ones do not), or
  // nullopt when there is none. Does not remove it: the tier calls on_evict.
  virtual std::optional<ExpertKey> choose_victim(const std::function<bool(ExpertKey)>& evictable) = 0;
};

std::unique_ptr<EvictionPolicy> make_lru_policy();

// Least frequently used with aging (lfu_policy.cpp): every insert or hit adds 1 to an expert's
// count and all counts decay exponentially, so an expert that was hot long ago loses to one
// that is warm now. Ties go to the least recently used. Counts of evicted experts are kept
// (a hot expert that comes back keeps its history), up to `history` of them. O(log n) per call.
struct LfuOptions {
  // Inserts + hits over which every count halves. 0: 4 x the experts resident at the time,
  // so the policy remembers about four cache turnovers whatever the cache size.
  double half_life = 0;
  // Evicted experts whose counts are remembered; the weakest are forgotten first.
  // 0: as many as are resident, at least 1024.
  size_t history = 0;
};
std::unique_ptr<EvictionPolicy> make_lfu_policy();
std::unique_ptr<EvictionPolicy> make_lfu_policy(const LfuOptions& o);

// Expected next use (next_use_policy.cpp): the victim is the expert whose next use is expected
// furthest away, from the layer cycle (the layer that just ran comes round last) and each
// expert's use rate per step of its layer. Ties (a large batch uses every expert every step)
// go to the newest arrival, so part of every layer stays resident instead of the whole cache
// turning over each step as it does under LRU and LFU.
struct NextUseOptions {
  double half_life_steps = 16;  // steps of an expert's layer over which its use rate halves
};
std::unique_ptr<EvictionPolicy> make_next_use_policy(const NextUseOptions& o = {});

// By name: one of policy_names(). Throws std::invalid_argument naming the valid choices.
std::unique_ptr<EvictionPolicy> make_policy(const std::string& name);
const std::vector<std::string>& policy_names();  // "lru", "lfu", "nextuse": flags and trace-sim

}  // namespace moe
