// One routed expert as a single contiguous record: gate, up and down, each as values, scales
// and zero points, every piece on a 256-byte boundary (what the GPU kernels' 16-byte loads and
// cudaMalloc-like alignment need). The VRAM tier copies records into slots; the GPU engine
// reads the matrices back out of a slot with the same layout.
#pragma once
#include <cstdint>

#include "storage/expert_source.h"

namespace moe {

// Byte offsets of one matrix's pieces in a record (scales / zeros: 0 when the format has none).
struct RecordPiece {
  uint64_t data = 0, scales = 0, zeros = 0;
  bool operator==(const RecordPiece&) const = default;
};

struct ExpertRecordLayout {
  RecordPiece gate, up, down;
  uint64_t bytes = 0;  // the whole record (a multiple of 256 for expert_record_layout's)
  bool operator==(const ExpertRecordLayout&) const = default;
};

inline constexpr uint64_t kRecordAlign = 256;

// Where each piece of w goes. Depends only on the three matrices' formats and shapes.
ExpertRecordLayout expert_record_layout(const ExpertWeights& w);

// Copies w's pieces into dst [layout.bytes] (padding zeroed).
void pack_expert_record(const ExpertWeights& w, const ExpertRecordLayout& layout, uint8_t* dst);

// The view of `shape` (format, shape, group) with its pointers into the record at `base`: the
// inverse of pack_expert_record, for host or device addresses alike (nothing is dereferenced).
WeightView record_view(const WeightView& shape, const void* base, const RecordPiece& piece);

// Same formats, shapes and groups (what lets one layout serve every expert of a model).
bool same_shape(const ExpertWeights& a, const ExpertWeights& b);

// The layout of w's pieces relative to `base` (w's pointers all inside one record starting
// there): how a record already in memory (a pack's decoded record) is read on the device.
ExpertRecordLayout layout_relative_to(const ExpertWeights& w, const uint8_t* base, uint64_t record_bytes);

}  // namespace moe
