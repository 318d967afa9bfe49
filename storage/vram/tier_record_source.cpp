#include "storage/vram/tier_record_source.h"

#include <fmt/format.h>

#include <stdexcept>

namespace moe {

TierRecordSource::TierRecordSource(TieredExperts& tier) : tier_(tier) {
  const ExpertCatalog& cat = tier_.catalog();
  for (int l = 0; l < cat.n_layers(); ++l) {
    if (cat.n_experts(l) == 0) continue;
    // The catalog computes views from any buffer of the record's size: offsets without a read.
    const uint64_t raw = cat.record(l, 0).raw_bytes;
    std::vector<uint8_t> scratch(static_cast<size_t>(raw));
    shape_ = cat.views(l, 0, scratch.data());
    layout_ = layout_relative_to(shape_, scratch.data(), raw);
    return;
  }
  throw std::invalid_argument("TierRecordSource: the pack has no layer with routed experts");
}

int TierRecordSource::n_layers() const { return tier_.catalog().n_layers(); }
int TierRecordSource::n_experts(int layer) const { return tier_.catalog().n_experts(layer); }
uint64_t TierRecordSource::bytes(ExpertKey k) const { return tier_.catalog().record(k.layer, k.expert).raw_bytes; }

const uint8_t* TierRecordSource::acquire(ExpertKey k) {
  const ExpertWeights w = tier_.acquire(k.layer, k.expert);
  const auto* base = static_cast<const uint8_t*>(w.gate.data) - layout_.gate.data;
  if (!same_shape(w, shape_) || !(layout_relative_to(w, base, layout_.bytes) == layout_)) {
    tier_.release(k.layer, k.expert);
    throw std::invalid_argument(fmt::format(
        "expert {} of layer {} is laid out differently from the pack's first expert; the GPU engine reads every "
        "record with one layout (re-convert the pack with one --experts format)",
        k.expert, k.layer));
  }
  return base;
}

void TierRecordSource::release(ExpertKey k) { tier_.release(k.layer, k.expert); }

}  // namespace moe
