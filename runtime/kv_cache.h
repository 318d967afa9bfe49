// One sequence's attention keys and values, fp32, per layer [length, k_width] and
// [length, v_width]. MLA caches one row per token (latent + rotary key) and no V (v_width 0).
// Grows on demand up to the engine's maximum length; a prefix can be copied into a new
// sequence so prompts that share a prefix skip recomputing it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace moe {

class KvCache {
 public:
  KvCache(int n_layers, int64_t k_width, int64_t v_width)
      : row_(k_width), vrow_(v_width), k_(size_t(n_layers)), v_(size_t(n_layers)) {}

  int64_t length() const { return length_; }
  void set_length(int64_t n) { length_ = n; }
  // Makes rows [0, n) addressable.
  void reserve(int64_t n);
  float* k(int layer, int64_t pos) { return k_[size_t(layer)].data() + pos * row_; }
  float* v(int layer, int64_t pos) { return v_[size_t(layer)].data() + pos * vrow_; }
  const float* k(int layer) const { return k_[size_t(layer)].data(); }
  const float* v(int layer) const { return v_[size_t(layer)].data(); }
  int64_t row_width() const { return row_; }
  // A new cache holding the first n rows of this one.
  KvCache prefix(int64_t n) const;
  int64_t bytes() const;

 private:
  int64_t row_, vrow_;
  int64_t length_ = 0;
  int64_t capacity_ = 0;
  std::vector<std::vector<float>> k_, v_;  // [layer][capacity * row]
};

}  // namespace moe
