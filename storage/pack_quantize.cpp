#include "storage/pack_quantize.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace moe::pack {
namespace {

// Rows per chunk: a multiple of 128 so block-scaled FP8 chunks start on a block.
constexpr int64_t kChunkRows = 128;

int32_t stored_group(const QuantOptions& t) {
  if (t.dtype == DType::MXFP4) return 32;
  return (t.dtype == DType::Q4 || t.dtype == DType::Q4Z || t.dtype == DType::F8E4M3) ? t.group : 0;
}

}  // namespace

MatrixLayout place_alone(const QuantOptions& t, int64_t rows, int64_t cols) {
  uint64_t cursor = 0;
  return place_matrix(t.dtype, stored_group(t), rows, cols, &cursor);
}

LayerLayout plan_expert_layer(uint32_t layer, uint32_t n_experts, int64_t inter, int64_t hidden,
                              const QuantOptions& t) {
  LayerLayout l;
  l.layer = layer;
  l.n_experts = n_experts;
  uint64_t cursor = 0;
  l.gate = place_matrix(t.dtype, stored_group(t), inter, hidden, &cursor);
  l.up = place_matrix(t.dtype, stored_group(t), inter, hidden, &cursor);
  l.down = place_matrix(t.dtype, stored_group(t), hidden, inter, &cursor);
  l.raw_bytes = cursor;
  return l;
}

double convert_matrix(const WeightView& src, const QuantOptions& t, const MatrixLayout& dst, uint8_t* base) {
  const int64_t rows = src.rows, cols = src.cols;
  if (src.dtype == t.dtype && !is_quantized(t.dtype)) {
    // Same float format: a bitwise copy (keeps bf16 checkpoints exact).
    std::memcpy(base + dst.data_offset, src.data, size_t(src.data_bytes()));
    return 0.0;
  }
  if ((src.dtype == DType::F8E4M3 && t.dtype == DType::F8E4M3 && src.group == 128 && t.group == 128) ||
      (src.dtype == DType::MXFP4 && t.dtype == DType::MXFP4)) {
    // DeepSeek-V3's FP8 blocks or gpt-oss's MXFP4 into the same layout: values and scales as shipped.
    std::memcpy(base + dst.data_offset, src.data, size_t(src.data_bytes()));
    std::memcpy(base + dst.scales_offset, src.scales, size_t(src.scale_bytes()));
    return 0.0;
  }
  std::vector<float> ref, back(static_cast<size_t>(cols));
  uint64_t data_at = dst.data_offset, scales_at = dst.scales_offset, zeros_at = dst.zeros_offset;
  double err = 0, energy = 0;
  for (int64_t r0 = 0; r0 < rows; r0 += kChunkRows) {
    const int64_t n = std::min(kChunkRows, rows - r0);
    ref.resize(size_t(n * cols));
    for (int64_t r = 0; r < n; ++r) dequantize_row(src, r0 + r, &ref[size_t(r * cols)]);
    const QuantizedMatrix q = quantize(ref.data(), n, cols, t);
    std::memcpy(base + data_at, q.data.data(), q.data.size());
    data_at += q.data.size();
    if (!q.scales.empty()) std::memcpy(base + scales_at, q.scales.data(), q.scales.size());
    scales_at += q.scales.size();
    if (!q.zeros.empty()) std::memcpy(base + zeros_at, q.zeros.data(), q.zeros.size());
    zeros_at += q.zeros.size();
    const WeightView qv = q.view();
    for (int64_t r = 0; r < n; ++r) {
      dequantize_row(qv, r, back.data());
      const float* x = &ref[size_t(r * cols)];
      for (int64_t c = 0; c < cols; ++c) {
        const double d = double(back[size_t(c)]) - x[c];
        err += d * d;
        energy += double(x[c]) * x[c];
      }
    }
  }
  return energy > 0 ? err / energy : 0.0;
}

}  // namespace moe::pack
