#include "storage/vram/miss_split.h"

namespace moe {

MissSplit split_misses(const VramTier& tier, int layer, std::span<const RoutedExpert> experts,
                       const MissCalibration& c, MissPathCounts& counts) {
  MissSplit out;
  for (const RoutedExpert& r : experts) {
    const ExpertKey key{layer, r.expert};
    if (tier.resident(key)) {
      out.gpu.push_back(r.expert);
      continue;
    }
    const MissDecision d = decide_miss(c, {tier.pending_copy_bytes(key), tier.present(key), r.tokens});
    counts.add(d, r.tokens);
    (d.path == MissPath::ComputeOnCpu ? out.cpu : out.gpu).push_back(r.expert);
  }
  return out;
}

}  // namespace moe
