// A HostExpertSource whose records share one layout (expert_record.h), which the GPU engine
// uses to find an expert's matrices in its VRAM slot. Two kinds: RecordSource packs any
// ExpertSource's matrices into records of its own layout (record_source.h); TierRecordSource
// hands out the RAM tier's decoded pack records as they are (tier_record_source.h).
#pragma once
#include "storage/expert_source.h"
#include "storage/vram/expert_record.h"
#include "storage/vram/host_expert_source.h"

namespace moe {

class ExpertRecords : public HostExpertSource {
 public:
  virtual const ExpertRecordLayout& layout() const = 0;
  virtual const ExpertWeights& shape() const = 0;  // formats and shapes; pointers meaningless
};

}  // namespace moe
