// One sequence's attention state: per layer, fp32 keys [length, k_width] and values
// [length, v_width] (MLA caches one row per token, latent + rotary key, and no V), grown on
// demand; a layer listed in `no_kv` keeps none. Gated DeltaNet layers (Qwen3-Next) instead keep
// a fixed-size recurrent state (`state_floats` each), with snapshots of it at chosen positions
// so a fork or truncate to an earlier point can restart from one and recompute the rest from the
// sequence's own tokens, which the cache keeps for that.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

namespace moe {

class KvCache {
 public:
  KvCache(int n_layers, int64_t k_width, int64_t v_width, std::vector<bool> no_kv = {}, int64_t state_floats = 0);

  int64_t length() const { return length_; }
  void set_length(int64_t n) {
    length_ = n;
    if (int64_t(tokens_.size()) > n) tokens_.resize(size_t(n));
  }
  // Makes rows [0, n) addressable.
  void reserve(int64_t n);
  float* k(int layer, int64_t pos) { return k_[size_t(layer)].data() + pos * row_; }
  float* v(int layer, int64_t pos) { return v_[size_t(layer)].data() + pos * vrow_; }
  const float* k(int layer) const { return k_[size_t(layer)].data(); }
  const float* v(int layer) const { return v_[size_t(layer)].data(); }
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
  std::vector<std::vector<float>> k_, v_;  // [layer][capacity * row]
  std::vector<int32_t> tokens_;
  int64_t state_floats_ = 0;
  std::vector<std::vector<float>> state_;  // [layer][state_floats] (empty for layers without)
  std::map<int64_t, std::vector<std::vector<float>>> snapshots_;  // pos -> [layer][state_floats]
};

}  // namespace moe
