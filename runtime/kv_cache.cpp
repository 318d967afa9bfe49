#include "runtime/kv_cache.h"

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <string>

#include "kernels/cpu/kv_convert.h"

namespace moe {

KvCache::KvCache(int n_layers, int64_t k_width, int64_t v_width, std::vector<bool> no_kv, int64_t state_floats,
                 DType dtype)
    : row_(k_width),
      vrow_(v_width),
      no_kv_(std::move(no_kv)),
      dtype_(dtype),
      esize_(dtype_size(dtype)),
      k_(size_t(n_layers)),
      v_(size_t(n_layers)),
      state_floats_(state_floats),
      state_(size_t(n_layers)) {
  if (!cpu::kv_dtype_supported(dtype))
    throw std::invalid_argument("a KV cache holds f32, bf16, f16 or fp8 (e4m3) rows, not " + std::string(dtype_name(dtype)));
  no_kv_.resize(size_t(n_layers), false);
  if (state_floats_ > 0)
    for (size_t l = 0; l < state_.size(); ++l)
      if (no_kv_[l]) state_[l].assign(size_t(state_floats_), 0.0f);
}

void KvCache::reserve(int64_t n) {
  if (n > capacity_) reserve_exact(std::max<int64_t>(n, capacity_ * 2));  // amortised growth for decode
}

void KvCache::reserve_exact(int64_t n) {
  if (n <= capacity_) return;
  capacity_ = n;
  for (size_t l = 0; l < k_.size(); ++l) {
    if (no_kv_[l]) continue;
    k_[l].resize(size_t(capacity_ * row_ * esize_));
    v_[l].resize(size_t(capacity_ * vrow_ * esize_));
  }
}

void KvCache::put(int layer, int64_t pos, const float* k, const float* v) {
  cpu::kv_narrow(dtype_, k, row_, k_[size_t(layer)].data() + pos * row_ * esize_);
  if (v) cpu::kv_narrow(dtype_, v, vrow_, v_[size_t(layer)].data() + pos * vrow_ * esize_);
}

void KvCache::read_k(int layer, int64_t first, int64_t n, int64_t col, int64_t width, float* out) const {
  cpu::kv_widen(dtype_, k_[size_t(layer)].data(), row_, first, n, col, width, out);
}

void KvCache::read_v(int layer, int64_t first, int64_t n, int64_t col, int64_t width, float* out) const {
  cpu::kv_widen(dtype_, v_[size_t(layer)].data(), vrow_, first, n, col, width, out);
}

KvCache KvCache::prefix(int64_t n) const {
  KvCache c(int(k_.size()), row_, vrow_, no_kv_, state_floats_, dtype_);
  c.reserve(n);
  for (size_t l = 0; l < k_.size(); ++l) {
    if (no_kv_[l]) continue;
    std::copy_n(k_[l].begin(), n * row_ * esize_, c.k_[l].begin());
    std::copy_n(v_[l].begin(), n * vrow_ * esize_, c.v_[l].begin());
  }
  c.length_ = n;
  c.tokens_.assign(tokens_.begin(), tokens_.begin() + std::min<int64_t>(n, int64_t(tokens_.size())));
  return c;
}

int64_t KvCache::bytes() const {
  int64_t kv_layers = 0;
  for (bool b : no_kv_) kv_layers += b ? 0 : 1;
  int64_t state_layers = 0;
  for (const auto& s : state_) state_layers += s.empty() ? 0 : 1;
  const int64_t per_state = state_layers * state_floats_ * int64_t(sizeof(float));
  return kv_layers * capacity_ * (row_ + vrow_) * esize_ + per_state * int64_t(1 + snapshots_.size()) +
         int64_t(tokens_.capacity() * sizeof(int32_t));
}

void KvCache::zero_states() {
  for (auto& s : state_) std::fill(s.begin(), s.end(), 0.0f);
}

void KvCache::snapshot(int layer, int64_t pos) {
  auto& snap = snapshots_[pos];
  if (snap.empty()) snap.resize(state_.size());
  snap[size_t(layer)] = state_[size_t(layer)];
}

int64_t KvCache::restore_at_or_before(int64_t n) {
  snapshots_.erase(snapshots_.upper_bound(n), snapshots_.end());
  // A snapshot missing a layer (a forward that failed half way) is not one.
  const auto complete = [&](const std::vector<std::vector<float>>& snap) {
    for (size_t l = 0; l < state_.size(); ++l)
      if (!state_[l].empty() && snap[l].size() != state_[l].size()) return false;
    return true;
  };
  while (!snapshots_.empty() && !complete(snapshots_.rbegin()->second)) snapshots_.erase(std::prev(snapshots_.end()));
  if (snapshots_.empty()) {
    zero_states();
    return 0;
  }
  const auto& [pos, snap] = *snapshots_.rbegin();
  for (size_t l = 0; l < state_.size(); ++l)
    if (!state_[l].empty()) state_[l] = snap[l];
  return pos;
}

void KvCache::copy_states_from(const KvCache& o, int64_t up_to) {
  state_ = o.state_;
  snapshots_.clear();
  for (const auto& [pos, snap] : o.snapshots_)
    if (pos <= up_to) snapshots_[pos] = snap;
}

}  // namespace moe
