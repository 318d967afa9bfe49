// A read-only view of a 2-D weight matrix stored row-major as [rows, cols]
// (PyTorch Linear layout: [out_features, in_features]), in any format of quant/dtype.h.
// Owns nothing.
#pragma once
#include <cstdint>
#include <stdexcept>

#include "quant/dtype.h"

namespace moe {

struct WeightView {
  DType dtype = DType::F32;
  const void* data = nullptr;
  int64_t rows = 0;  // output features
  int64_t cols = 0;  // input features
  const void* scales = nullptr;   // quantized formats only (layout in quant/dtype.h)
  const uint8_t* zeros = nullptr;  // Q4Z only
  int32_t group = 0;               // Q4/Q4Z: columns per scale; F8E4M3: 0 per-row, 128 block scales; MXFP4: 32

  bool empty() const { return data == nullptr; }
  // Bytes of the packed values alone.
  int64_t data_bytes() const {
    return dtype == DType::Q4 || dtype == DType::Q4Z || dtype == DType::MXFP4 ? rows * cols / 2 : rows * cols * dtype_size(dtype);
  }
  int64_t scale_bytes() const;
  // Everything the view points at: values, scales and zero points.
  int64_t bytes() const { return data_bytes() + scale_bytes() + (dtype == DType::Q4Z ? rows * (cols / group) : 0); }
  // Rows [r0, r0 + n) as a view (used to split fused gate_up tensors). Block-scaled FP8 needs
  // r0 to be a multiple of 128.
  WeightView row_slice(int64_t r0, int64_t n) const;
};

// Decode element i of a contiguous buffer of an unquantized dtype.
inline float load_as_f32(DType t, const void* p, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default: throw std::logic_error("load_as_f32: quantized dtype needs its scales (use dequantize_row)");
  }
}

}  // namespace moe
