// One sequence's KV cache on the GPU: per layer, K and V as [capacity, row] fp32, the layout
// kernels/cuda/attention.h reads (kv_stride = row = n_kv_heads * head_dim); an MLA cache keeps
// only K, rows of [latent | rotary key] (kernels/cuda/mla.h). A hybrid model's linear layers
// (gated DeltaNet) keep a fixed-size recurrent state instead, with snapshots of it at chosen
// positions and the sequence's token ids, so a fork or truncate to an earlier point restarts
// from the nearest snapshot and recomputes the rest (runtime/kv_cache.h does the same on the CPU).
// Grows by doubling (device-to-device copy of the rows held); a prefix can be copied into a new
// sequence.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "kernels/cuda/device_buffer.h"

namespace moe::gpu {

class GpuKv {
 public:
  // linear: the layers with a recurrent state of state_floats each and no K/V (empty: none).
  GpuKv(int n_layers, int64_t row, bool values = true, std::vector<bool> linear = {}, int64_t state_floats = 0);

  int64_t length() const { return length_; }
  void set_length(int64_t n);  // also forgets the token ids past n
  // Makes rows [0, n) addressable; copies the held rows on `stream` when it reallocates.
  void reserve(int64_t n, cudaStream_t stream);
  float* k(int layer) const { return k_[size_t(layer)].get(); }
  float* v(int layer) const { return values_ ? v_[size_t(layer)].get() : nullptr; }
  int64_t row() const { return row_; }
  // A new cache holding the first n rows of this one (copied on `stream`) and its first n token
  // ids; its states are zero (the engine copies and rewinds them).
  GpuKv prefix(int64_t n, cudaStream_t stream) const;
  int64_t bytes() const;

  // Recurrent states (hybrid models).
  bool has_state() const { return state_floats_ > 0; }
  float* state(int layer) const { return state_[size_t(layer)].get(); }
  void zero_states(cudaStream_t stream);
  void snapshot(int layer, int64_t pos, cudaStream_t stream);  // the layer's state as of position pos
  // The largest complete snapshot position <= n (0 when none: the zero state), its states
  // restored and every later snapshot dropped.
  int64_t restore_at_or_before(int64_t n, cudaStream_t stream);
  void copy_states_from(const GpuKv& o, int64_t up_to, cudaStream_t stream);  // states and snapshots <= up_to
  const std::vector<int32_t>& tokens() const { return tokens_; }
  void append_tokens(std::span<const int32_t> ids) { tokens_.insert(tokens_.end(), ids.begin(), ids.end()); }

 private:
  int64_t row_;
  bool values_;
  std::vector<bool> linear_;
  int64_t state_floats_;
  int64_t length_ = 0;
  int64_t capacity_ = 0;
  std::vector<cuda::DeviceBuffer<float>> k_, v_;  // empty buffers for linear layers
  std::vector<cuda::DeviceBuffer<float>> state_;  // [layers]: linear layers' states, else empty
  std::map<int64_t, std::vector<cuda::DeviceBuffer<float>>> snapshots_;  // pos -> [layers]
  std::vector<int32_t> tokens_;
};

}  // namespace moe::gpu
