// The VRAM tier as a PrefetchTarget, so PrefetchScheduler (prefetch/scheduler.h) moves guesses
// RAM -> GPU. It belongs in prefetch/ beside TierTarget (prefetch depends on storage, not the
// reverse); it lives here until the GPU engine is wired (prefetch/ is not edited in this change).
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
