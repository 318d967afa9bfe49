// Which resident expert leaves the RAM tier when a new one needs room. The tier tells the
// policy what happens (insert, access, evict) and asks it for a victim; pinning is the tier's
// business, passed as a predicate. Calls come under the tier's lock: policies need no locking
// of their own, and must be cheap in on_access (every cache hit calls it).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

namespace moe {

struct ExpertKey {
  int32_t layer = 0, expert = 0;
  bool operator==(const ExpertKey&) const = default;
  uint64_t packed() const { return (uint64_t(uint32_t(layer)) << 32) | uint32_t(expert); }
};

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual void on_insert(ExpertKey k) = 0;  // k became resident
  virtual void on_access(ExpertKey k) = 0;  // k was acquired while resident (a hit)
  virtual void on_evict(ExpertKey k) = 0;   // k left (chosen by choose_victim or dropped)
  // A resident expert for which `evictable` holds (pinned and loading ones do not), or
  // nullopt when there is none. Does not remove it: the tier calls on_evict.
  virtual std::optional<ExpertKey> choose_victim(const std::function<bool(ExpertKey)>& evictable) = 0;
};

std::unique_ptr<EvictionPolicy> make_lru_policy();

}  // namespace moe
