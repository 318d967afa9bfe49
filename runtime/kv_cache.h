// One sequence's attention state: per layer, keys [length, k_width] and values [length, v_width]
// (MLA caches one row per token, latent + rotary key, and no V), grown on demand, stored as fp32
// or rounded to a narrower `dtype` (bf16, f16, fp8 e4m3: --kv-dtype); a layer listed in `no_kv`
// keeps none. Gated DeltaNet layers (Qwen3-Next) instead keep a fixed-size recurrent state
// (`state_floats` each), with snapshots of it at chosen positions so a fork or truncate to an
// earlier point can restart from one and recompute the rest from the sequence's own tokens,
// which the cache keeps for that.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "quant/dtype.h"

namespace moe {

class KvCache {
 public:
  // Throws std::invalid_argument for a dtype other than F32, BF16, F16 and F8E4M3.
  KvCache(int n_layers, int64_t k_width, int64_t v_width, std::vector<bool> no_kv = {}, int64_t state_floats = 0,
          DType dtype = DType::F32);
  DType dtype() const { return dtype_; }

  int64_t length() const { return length_; }
  void set_length(int64_t n) {
    length_ = n;
    if (int64_t(tokens_.size()) > n) tokens_.resize(size_t(n));
  }
  // Makes rows [0, n) addressable (growing by doubling: token-by-token appends stay cheap).
  void reserve(int64_t n);
  // Makes rows [0, n) addressable with no room beyond (a scheduler's per-sequence budget).
  void reserve_exact(int64_t n);
  // Stores token `pos`'s key row (and value row; null when there is no V) of `layer`, rounded to
  // dtype(). The row must be reserved.
  void put(int layer, int64_t pos, const float* k, const float* v);
  // An fp32 cache's rows, read in place (nullptr for any other dtype).
  const float* k(int layer) const { return f32_rows(k_[size_t(layer)]); }
  const float* v(int layer) const { return f32_rows(v_[size_t(layer)]); }
  // A bf16 / f16 cache's rows as stored, read in place (nullptr for any other dtype).
  const uint16_t* k_half(int layer) const { return half_rows(k_[size_t(layer)]); }
  const uint16_t* v_half(int layer) const { return half_rows(v_[size_t(layer)]); }
  // Any dtype: rows [first, first + n), columns [col, col + width) of K (of V), widened into out [n, width].
  void read_k(int layer, int64_t first, int64_t n, int64_t col, int64_t width, float* out) const;
  void read_v(int layer, int64_t first, int64_t n, int64_t col, int64_t width, float* out) const;
  int64_t row_width() const { return row_; }
  // A new cache holding the first n rows and tokens of this one (recurrent states zeroed).
  KvCache prefix(int64_t n) const;
  int64_t bytes() const;

  // The ids this sequence has seen, [0, length).
  const std::vector<int32_t>& tokens() const { return tokens_; }
  void append_tokens(std::span<const int32_t> ids) { tokens_.insert(tokens_.end(), ids.begin(), ids.end()); }

  // Recurrent layers: this layer's state (state_floats values) at the current length.
  float* state(int layer) { return state_[size_t(layer)].data(); }
  bool has_state() const { return state_floats_ > 0; }
  void zero_states();
  // Snapshots: the states of every recurrent layer after `pos` tokens.
  void snapshot(int layer, int64_t pos);
  // The largest snapshot position <= n (0 when none: the zero state), its states restored and
  // every later snapshot dropped.
  int64_t restore_at_or_before(int64_t n);
  void copy_states_from(const KvCache& o, int64_t up_to);  // states and snapshots <= up_to

 private:
  int64_t row_, vrow_;
  int64_t length_ = 0;
  int64_t capacity_ = 0;
  std::vector<bool> no_kv_;
  const float* f32_rows(const std::vector<unsigned char>& b) const {
    return dtype_ == DType::F32 ? reinterpret_cast<const float*>(b.data()) : nullptr;
  }

  const uint16_t* half_rows(const std::vector<unsigned char>& b) const {
    return dtype_ == DType::BF16 || dtype_ == DType::F16 ? reinterpret_cast<const uint16_t*>(b.data()) : nullptr;
  }

  DType dtype_;
  int64_t esize_;                               // bytes per stored element
  std::vector<std::vector<unsigned char>> k_, v_;  // [layer][capacity * row * esize]
  std::vector<int32_t> tokens_;
  int64_t state_floats_ = 0;
  std::vector<std::vector<float>> state_;  // [layer][state_floats] (empty for layers without)
  std::map<int64_t, std::vector<std::vector<float>>> snapshots_;  // pos -> [layer][state_floats]
};

}  // namespace moe
