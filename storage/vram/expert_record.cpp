#include "storage/vram/expert_record.h"

#include <cstring>

namespace moe {
namespace {

uint64_t align_up(uint64_t n) { return (n + kRecordAlign - 1) / kRecordAlign * kRecordAlign; }

uint64_t zero_bytes(const WeightView& w) { return w.dtype == DType::Q4Z ? uint64_t(w.rows * (w.cols / w.group)) : 0; }

// Places w's pieces from offset `at`; returns the offset after them.
uint64_t place(const WeightView& w, uint64_t at, RecordPiece& p) {
  p.data = at;
  at = align_up(at + uint64_t(w.data_bytes()));
  if (w.scale_bytes() > 0) {
    p.scales = at;
    at = align_up(at + uint64_t(w.scale_bytes()));
  }
  if (zero_bytes(w) > 0) {
    p.zeros = at;
    at = align_up(at + zero_bytes(w));
  }
  return at;
}

// n bytes of src at dst + at, then zeros up to the next boundary (only the padding is
// written twice, never the whole record: this runs for every expert copied to the GPU).
void put(uint8_t* dst, uint64_t at, const void* src, uint64_t n) {
  std::memcpy(dst + at, src, size_t(n));
  std::memset(dst + at + n, 0, size_t(align_up(at + n) - (at + n)));
}

void copy_piece(const WeightView& w, const RecordPiece& p, uint8_t* dst) {
  put(dst, p.data, w.data, uint64_t(w.data_bytes()));
  if (w.scale_bytes() > 0) put(dst, p.scales, w.scales, uint64_t(w.scale_bytes()));
  if (zero_bytes(w) > 0) put(dst, p.zeros, w.zeros, zero_bytes(w));
}

bool same(const WeightView& a, const WeightView& b) {
  return a.dtype == b.dtype && a.rows == b.rows && a.cols == b.cols && a.group == b.group;
}

}  // namespace

ExpertRecordLayout expert_record_layout(const ExpertWeights& w) {
  ExpertRecordLayout L;
  uint64_t at = place(w.gate, 0, L.gate);
  at = place(w.up, at, L.up);
  L.bytes = place(w.down, at, L.down);
  return L;
}

void pack_expert_record(const ExpertWeights& w, const ExpertRecordLayout& L, uint8_t* dst) {
  copy_piece(w.gate, L.gate, dst);
  copy_piece(w.up, L.up, dst);
  copy_piece(w.down, L.down, dst);
}

WeightView record_view(const WeightView& shape, const void* base, const RecordPiece& p) {
  const auto* b = static_cast<const uint8_t*>(base);
  WeightView v = shape;
  v.data = b + p.data;
  v.scales = shape.scale_bytes() > 0 ? b + p.scales : nullptr;
  v.zeros = zero_bytes(shape) > 0 ? b + p.zeros : nullptr;
  return v;
}

ExpertRecordLayout layout_relative_to(const ExpertWeights& w, const uint8_t* base, uint64_t record_bytes) {
  auto off = [&](const void* p) { return p ? uint64_t(static_cast<const uint8_t*>(p) - base) : 0; };
  auto piece = [&](const WeightView& v) { return RecordPiece{off(v.data), off(v.scales), off(v.zeros)}; };
  return {piece(w.gate), piece(w.up), piece(w.down), record_bytes};
}

bool same_shape(const ExpertWeights& a, const ExpertWeights& b) {
  return same(a.gate, b.gate) && same(a.up, b.up) && same(a.down, b.down);
}

}  // namespace moe
