// Converting weights into pack layouts, a bounded number of rows at a time: the converter
// never holds more than one chunk of one matrix in fp32, whatever the checkpoint's size.
#pragma once
#include <algorithm>
#include <cstdint>

#include "quant/quantize.h"
#include "storage/pack_format.h"

namespace moe::pack {

// Per-matrix NMSE of a class of tensors (one matrix = one sample).
struct ErrorStats {
  int64_t tensors = 0;
  double sum = 0, worst = 0;
  void add(double nmse) {
    ++tensors;
    sum += nmse;
    worst = std::max(worst, nmse);
  }
  void merge(const ErrorStats& o) {
    tensors += o.tensors;
    sum += o.sum;
    worst = std::max(worst, o.worst);
  }
  double mean() const { return tensors ? sum / double(tensors) : 0.0; }
};

// Lays out a matrix of the target format from offset 0 (a dense tensor's own buffer).
MatrixLayout place_alone(const QuantOptions& t, int64_t rows, int64_t cols);
// The record layout of an MoE layer's experts: gate, up, down back to back.
LayerLayout plan_expert_layer(uint32_t layer, uint32_t n_experts, int64_t inter, int64_t hidden,
                              const QuantOptions& t);

// Writes `src` (F32/F16/BF16 or any quantized format) in format `t` at base + dst's offsets,
// 128 rows at a time. Returns the NMSE of the result against src (0 for exact copies).
double convert_matrix(const WeightView& src, const QuantOptions& t, const MatrixLayout& dst, uint8_t* base);

}  // namespace moe::pack
