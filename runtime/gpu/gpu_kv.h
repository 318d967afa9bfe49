// One sequence's KV cache on the GPU: per layer, K and V as [capacity, row] fp32, the layout
// kernels/cuda/attention.h reads (kv_stride = row = n_kv_heads * head_dim); an MLA cache keeps
// only K, rows of [latent | rotary key] (kernels/cuda/mla.h). Grows by doubling
// (device-to-device copy of the rows held); a prefix can be copied into a new sequence.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "kernels/cuda/device_buffer.h"

namespace moe::gpu {

class GpuKv {
 public:
  GpuKv(int n_layers, int64_t row, bool values = true)
      : row_(row), values_(values), k_(size_t(n_layers)), v_(size_t(values ? n_layers : 0)) {}

  int64_t length() const { return length_; }
  void set_length(int64_t n) { length_ = n; }
  // Makes rows [0, n) addressable; copies the held rows on `stream` when it reallocates.
  void reserve(int64_t n, cudaStream_t stream);
  float* k(int layer) const { return k_[size_t(layer)].get(); }
  float* v(int layer) const { return values_ ? v_[size_t(layer)].get() : nullptr; }
  int64_t row() const { return row_; }
  // A new cache holding the first n rows of this one (copied on `stream`).
  GpuKv prefix(int64_t n, cudaStream_t stream) const;
  int64_t bytes() const {
    return int64_t(k_.size() + v_.size()) * capacity_ * row_ * int64_t(sizeof(float));
  }

 private:
  int64_t row_;
  bool values_;
  int64_t length_ = 0;
  int64_t capacity_ = 0;
  std::vector<cuda::DeviceBuffer<float>> k_, v_;
};

}  // namespace moe::gpu
