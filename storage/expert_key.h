// One routed expert's address: (layer, expert). Its own header because every tier (RAM, VRAM),
// the prefetcher and the GPU engine name experts by it, not only the eviction policies.
#pragma once
#include <cstdint>

namespace moe {

struct ExpertKey {
  int32_t layer = 0, expert = 0;
  bool operator==(const ExpertKey&) const = default;
  uint64_t packed() const { return (uint64_t(uint32_t(layer)) << 32) | uint32_t(expert); }
};

}  // namespace moe
