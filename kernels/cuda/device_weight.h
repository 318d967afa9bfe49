// A weight matrix in device memory: the fields of quant/weight_view.h's WeightView, with device
// pointers (a distinct type, so a host view cannot be passed to a kernel by mistake).
#pragma once
#include <cstdint>

#include "kernels/cuda/device_buffer.h"
#include "quant/weight_view.h"

namespace moe::cuda {

struct DeviceWeight {
  DType dtype = DType::F32;
  const void* data = nullptr;       // device: packed values (layout: quant/dtype.h)
  int64_t rows = 0;                 // N, output features
  int64_t cols = 0;                 // K, input features
  const void* scales = nullptr;     // device: fp16 [rows, cols / group] (Q4/Q4Z), fp32 (F8E4M3; I8: [rows]),
                                    // e8m0 u8 [rows, cols / 32] (MXFP4)
  const uint8_t* zeros = nullptr;   // device: Q4Z only, u8 [rows, cols / group]
  int32_t group = 0;                // as in WeightView
};

// An owned device copy of a host WeightView (what tests and benchmarks need; the GPU engine
// will place experts itself). Every buffer starts on a cudaMalloc boundary (256 B aligned).
class DeviceMatrix {
 public:
  explicit DeviceMatrix(const WeightView& host);
  const DeviceWeight& weight() const { return w_; }
  int64_t bytes() const { return int64_t(data_.bytes() + scales_.bytes() + zeros_.bytes()); }

 private:
  DeviceBuffer<uint8_t> data_, scales_, zeros_;
  DeviceWeight w_;
};

}  // namespace moe::cuda
