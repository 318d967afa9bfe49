// The RAM tier's experts as VRAM records, with no repacking: a pack's decoded record (gate, up,
// down at 64-byte aligned offsets) is copied to the slot as it is, straight from the RAM tier's
// buffer (direct_copy: no staging copy; the expert stays acquired in the RAM tier until its copy
// has finished). The layout is the pack's, read once from the catalog; an expert whose matrices
// sit elsewhere in its record is refused at acquire.
#pragma once
#include <vector>

#include "storage/tier/tiered_experts.h"
#include "storage/vram/expert_records.h"

namespace moe {

class TierRecordSource final : public ExpertRecords {
 public:
  // Reads the layout of the first MoE layer's expert 0 from the catalog (no disk read).
  // Throws std::invalid_argument when the pack has no routed experts.
  explicit TierRecordSource(TieredExperts& tier);

  int n_layers() const override;
  int n_experts(int layer) const override;
  uint64_t bytes(ExpertKey k) const override;  // the decoded record (raw_bytes)
  bool direct_copy() const override { return true; }
  const uint8_t* acquire(ExpertKey k) override;
  void release(ExpertKey k) override;
  const ExpertRecordLayout& layout() const override { return layout_; }
  const ExpertWeights& shape() const override { return shape_; }

 private:
  TieredExperts& tier_;
  ExpertWeights shape_;
  ExpertRecordLayout layout_;
};

}  // namespace moe
