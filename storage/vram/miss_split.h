// One MoE layer's routed experts of a step split between the GPU and the CPU: a resident expert
// runs on the GPU; a missed one (absent, queued or still copying) goes where decide_miss says it
// finishes sooner, given the bytes the link must still move for it. Every miss is counted.
#pragma once
#include <span>
#include <vector>

#include "storage/vram/miss_cost.h"
#include "storage/vram/vram_tier.h"

namespace moe {

struct RoutedExpert {
  int expert = 0;
  int tokens = 0;  // >= 1
};

struct MissSplit {
  std::vector<int> gpu, cpu;  // experts, in the order given
};

// Reads the tier's state only (resident, present, pending_copy_bytes): starts no copy.
MissSplit split_misses(const VramTier& tier, int layer, std::span<const RoutedExpert> experts,
                       const MissCalibration& c, MissPathCounts& counts);

}  // namespace moe
