#include "runtime/kv_cache.h"

#include <algorithm>
#include <iterator>
#include <stdexcept>
#include <string>

#include "kernels/cpu/kv_convert.h"

namespace moe {

KvPagePool::Page KvPagePool::get(const std::shared_ptr<KvPagePool>& pool, size_t bytes) {
  Page p(new unsigned char[bytes](), [pool, bytes](unsigned char* q) {
    delete[] q;
    pool->bytes_.fetch_sub(int64_t(bytes), std::memory_order_relaxed);
    pool->pages_.fetch_sub(1, std::memory_order_relaxed);
  });
  pool->bytes_.fetch_add(int64_t(bytes), std::memory_order_relaxed);
  pool->pages_.fetch_add(1, std::memory_order_relaxed);
  return p;
}

KvCache::KvCache(int n_layers, int64_t k_width, int64_t v_width, std::vector<bool> no_kv, int64_t state_floats,
                 DType dtype, std::shared_ptr<KvPagePool> pool)
    : row_(k_width),
      vrow_(v_width),
      no_kv_(std::move(no_kv)),
      dtype_(dtype),
      esize_(dtype_size(dtype)),
      pool_(pool ? std::move(pool) : std::make_shared<KvPagePool>()),
      k_(size_t(n_layers)),
      v_(size_t(n_layers)),
      kp_(size_t(n_layers)),
      vp_(size_t(n_layers)),
      state_floats_(state_floats),
      state_(size_t(n_layers)) {
  if (!cpu::kv_dtype_supported(dtype))
    throw std::invalid_argument("a KV cache holds f32, bf16, f16 or fp8 (e4m3) rows, not " + std::string(dtype_name(dtype)));
  no_kv_.resize(size_t(n_layers), false);
  if (state_floats_ > 0)
    for (size_t l = 0; l < state_.size(); ++l)
      if (no_kv_[l]) state_[l].assign(size_t(state_floats_), 0.0f);
}

void KvCache::resize_pages(int64_t n) {
  each_table([&](size_t, bool, std::vector<Page>& pages, std::vector<const void*>& ptrs, size_t bytes) {
    while (int64_t(pages.size()) < n) pages.push_back(KvPagePool::get(pool_, bytes));
    pages.resize(size_t(n));
    ptrs.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) ptrs[size_t(i)] = pages[size_t(i)].get();
  });
  capacity_ = n << kPageShift;
}

void KvCache::set_length(int64_t n) {
  length_ = n;
  if (int64_t(tokens_.size()) > n) tokens_.resize(size_t(n));
  if (pages_for(n) < pages()) resize_pages(pages_for(n));
}

void KvCache::reserve(int64_t n) {
  if (n > capacity_) resize_pages(pages_for(n));
  make_writable(length_, n);
}

void KvCache::make_writable(int64_t first, int64_t end) {
  if (end <= first) return;
  each_table([&](size_t, bool, std::vector<Page>& pages, std::vector<const void*>& ptrs, size_t bytes) {
    for (int64_t i = first >> kPageShift; i <= (end - 1) >> kPageShift; ++i) {
      Page& p = pages[size_t(i)];
      if (p.use_count() == 1) continue;
      Page own = KvPagePool::get(pool_, bytes);
      std::copy_n(p.get(), bytes, own.get());
      p = std::move(own);
      ptrs[size_t(i)] = p.get();
    }
  });
}

void KvCache::put(int layer, int64_t pos, const float* k, const float* v) {
  cpu::kv_narrow(dtype_, k, row_, at(k_[size_t(layer)], row_, pos));
  if (v) cpu::kv_narrow(dtype_, v, vrow_, at(v_[size_t(layer)], vrow_, pos));
}

void KvCache::read_k(int layer, int64_t first, int64_t n, int64_t col, int64_t width, float* out) const {
  cpu::kv_widen(dtype_, k_rows(layer, col), first, n, width, out);
}

void KvCache::read_v(int layer, int64_t first, int64_t n, int64_t col, int64_t width, float* out) const {
  cpu::kv_widen(dtype_, v_rows(layer, col), first, n, width, out);
}

KvCache KvCache::prefix(int64_t n) const {
  KvCache c(int(k_.size()), row_, vrow_, no_kv_, state_floats_, dtype_, pool_);
  const auto keep = ptrdiff_t(pages_for(n));
  c.each_table([&](size_t l, bool is_v, std::vector<Page>& pages, std::vector<const void*>& ptrs, size_t) {
    const auto& src = is_v ? v_[l] : k_[l];
    const auto& addr = is_v ? vp_[l] : kp_[l];
    pages.assign(src.begin(), src.begin() + keep);
    ptrs.assign(addr.begin(), addr.begin() + keep);
  });
  c.capacity_ = int64_t(keep) << kPageShift;
  c.length_ = n;
  c.tokens_.assign(tokens_.begin(), tokens_.begin() + std::min<int64_t>(n, int64_t(tokens_.size())));
  return c;
}

int64_t KvCache::private_bytes() const {
  int64_t state_layers = 0;
  for (const auto& s : state_) state_layers += s.empty() ? 0 : 1;
  const int64_t per_state = state_layers * state_floats_ * int64_t(sizeof(float));
  return per_state * int64_t(1 + snapshots_.size()) + int64_t(tokens_.capacity() * sizeof(int32_t));
}

int64_t KvCache::bytes() const {
  int64_t kv_layers = 0;
  for (bool b : no_kv_) kv_layers += b ? 0 : 1;
  return kv_layers * capacity_ * (row_ + vrow_) * esize_ + private_bytes();
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
