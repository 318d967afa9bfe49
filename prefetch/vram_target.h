// The VRAM tier as a PrefetchTarget, so the same PrefetchScheduler that fills the RAM tier
// moves guesses RAM -> GPU (the second hop). Header-only: the GPU engine will own one per
// VramTier; until it is wired, tests/vram drives it with the fake device.
#pragma once
#include "prefetch/scheduler.h"
#include "storage/vram/vram_tier.h"

namespace moe {

class VramPrefetchTarget final : public PrefetchTarget {
 public:
  explicit VramPrefetchTarget(VramTier& tier) : tier_(tier) {}
  bool present(ExpertKey k) const override { return tier_.present(k); }
  uint64_t bytes(ExpertKey k) const override { return tier_.copy_bytes(k); }
  // Queues the copies and returns at once: the copy engine, not this thread, moves the bytes.
  size_t load(std::span<const ExpertKey> keys) override { return tier_.prefetch(keys); }

 private:
  VramTier& tier_;
};

}  // namespace moe
