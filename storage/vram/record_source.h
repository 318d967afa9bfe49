// HostExpertSource over any ExpertSource (an mmap'd checkpoint, the RAM tier): acquire(k)
// takes the expert from the source and packs its three matrices into one contiguous record
// (expert_record.h), the bytes the VRAM tier copies into a slot.
//
// Every expert must have the shape of the first MoE layer's expert 0 (the model's one record
// layout); one that differs is refused at acquire with a line naming it. The packing is a host
// memcpy of the expert (what a source whose experts are already one record could skip: a later
// optimisation). Thread safe: one mutex over the buffers.
#pragma once
#include <map>
#include <mutex>
#include <vector>

#include "storage/expert_source.h"
#include "storage/vram/expert_record.h"
#include "storage/vram/expert_records.h"

namespace moe {

class RecordSource final : public ExpertRecords {
 public:
  // experts_per_layer[l]: routed experts of layer l (0 for a dense layer). At least one layer
  // has experts. Reads one expert now for the layout (acquire + release on `src`).
  // wide16: F16/BF16 matrices go into the record as F32 (twice the bytes; the GPU engine's
  // exact mode, where cuBLAS must not round activations to 16 bits).
  RecordSource(ExpertSource& src, std::vector<int> experts_per_layer, bool wide16 = false);

  int n_layers() const override { return int(per_layer_.size()); }
  int n_experts(int layer) const override { return per_layer_.at(size_t(layer)); }
  uint64_t bytes(ExpertKey) const override { return layout_.bytes; }
  const uint8_t* acquire(ExpertKey k) override;
  void release(ExpertKey k) override;
  void copy_to(ExpertKey k, uint8_t* dst) override;  // packs straight into dst

  const ExpertRecordLayout& layout() const override { return layout_; }
  const ExpertWeights& shape() const override { return shape_; }

 private:
  ExpertSource& src_;
  std::vector<int> per_layer_;
  bool wide16_ = false;
  ExpertWeights shape_;
  ExpertRecordLayout layout_;
  std::mutex mu_;
  std::map<std::pair<int, int>, std::vector<uint8_t>> held_;  // acquired, not yet released
};

}  // namespace moe
