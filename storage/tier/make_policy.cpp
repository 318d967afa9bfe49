// Eviction policies by name, for flags (`--policy`) and the cache simulator.
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "storage/tier/eviction_policy.h"

namespace moe {

const std::vector<std::string>& policy_names() {
  static const std::vector<std::string> names = {"lru", "lfu", "nextuse"};
  return names;
}

std::unique_ptr<EvictionPolicy> make_policy(const std::string& name) {
  if (name == "lru") return make_lru_policy();
  if (name == "lfu") return make_lfu_policy();
  if (name == "nextuse") return make_next_use_policy();
  throw std::invalid_argument(
      fmt::format("unknown eviction policy '{}'; valid: {}", name, fmt::join(policy_names(), ", ")));
}

}  // namespace moe
