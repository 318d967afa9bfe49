// Quantizers (fp32 -> a quantized format of quant/dtype.h), row dequantization and error
// metrics. Used at convert time and by tests; kernels read the formats directly.
#pragma once
#include <cstdint>
#include <vector>

#include "quant/weight_view.h"

namespace moe {

struct QuantOptions {
  DType dtype = DType::Q4;   // Q4, Q4Z, F8E4M3, I8, or F32/F16/BF16 (plain conversion)
  int32_t group = 128;       // Q4/Q4Z: 32, 64 or 128; F8E4M3: 0 (per row) or 128 (128x128 blocks)
  bool clip_search = false;  // Q4/Q4Z: per group, search a clipping ratio that minimises squared error
};

// An owned quantized matrix; view() points into it.
struct QuantizedMatrix {
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  int32_t group = 0;
  std::vector<uint8_t> data;    // packed values (layout: quant/dtype.h)
  std::vector<uint8_t> scales;  // fp16 (Q4/Q4Z) or fp32 (F8E4M3, I8)
  std::vector<uint8_t> zeros;   // Q4Z only: one u8 per group
  WeightView view() const;
};

// w: [rows, cols] fp32. Throws std::invalid_argument with a clear message when the shape
// does not fit the format (e.g. cols not a multiple of the group size).
QuantizedMatrix quantize(const float* w, int64_t rows, int64_t cols, const QuantOptions& opt);

// Row `row` of any WeightView (quantized or not) as fp32 [cols].
void dequantize_row(const WeightView& w, int64_t row, float* out);
// The whole matrix as fp32 [rows, cols].
std::vector<float> dequantize(const WeightView& w);

// Normalised mean squared error sum((a - ref)^2) / sum(ref^2).
double nmse(const float* ref, const float* approx, int64_t n);

}  // namespace moe
