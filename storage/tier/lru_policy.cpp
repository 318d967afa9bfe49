// Least recently used: a list ordered by last use, most recent at the front, and a map from
// key to list node so every event is O(1). The victim search walks from the back past pinned
// experts (at most the experts of the steps in flight).
#include <list>
#include <unordered_map>

#include "storage/tier/eviction_policy.h"

namespace moe {

namespace {

class LruPolicy final : public EvictionPolicy {
 public:
  void on_insert(ExpertKey k) override {
    auto it = where_.find(k.packed());
    if (it != where_.end()) return on_access(k);
    order_.push_front(k);
    where_.emplace(k.packed(), order_.begin());
  }
  void on_access(ExpertKey k) override {
    auto it = where_.find(k.packed());
    if (it != where_.end()) order_.splice(order_.begin(), order_, it->second);
  }
  void on_evict(ExpertKey k) override {
    auto it = where_.find(k.packed());
    if (it == where_.end()) return;
    order_.erase(it->second);
    where_.erase(it);
  }
  std::optional<ExpertKey> choose_victim(const std::function<bool(ExpertKey)>& evictable) override {
    for (auto it = order_.rbegin(); it != order_.rend(); ++it)
      if (evictable(*it)) return *it;
    return std::nullopt;
  }

 private:
  std::list<ExpertKey> order_;  // most recently used first
  std::unordered_map<uint64_t, std::list<ExpertKey>::iterator> where_;
};

}  // namespace

std::unique_ptr<EvictionPolicy> make_lru_policy() { return std::make_unique<LruPolicy>(); }

}  // namespace moe
