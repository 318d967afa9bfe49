// Eviction policies by name, for flags (`--policy`) and the cache simulator.
#include <stdexcept>

#include "storage/tier/eviction_policy.h"

namespace moe {

std::unique_ptr<EvictionPolicy> make_policy(const std::string& name) {
  if (name == "lru") return make_lru_policy();
  if (name == "lfu") return make_lfu_policy();
  if (name == "nextuse") return make_next_use_policy();
  throw std::invalid_argument("unknown eviction policy '" + name + "'; valid: lru, lfu, nextuse");
}

}  // namespace moe
