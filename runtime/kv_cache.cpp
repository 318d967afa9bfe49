#include "runtime/kv_cache.h"

#include <algorithm>

namespace moe {

void KvCache::reserve(int64_t n) {
  if (n <= capacity_) return;
  capacity_ = std::max<int64_t>(n, capacity_ * 2);  // amortised growth for token-by-token decode
  for (auto& b : k_) b.resize(size_t(capacity_ * row_));
  for (auto& b : v_) b.resize(size_t(capacity_ * vrow_));
}

KvCache KvCache::prefix(int64_t n) const {
  KvCache c(int(k_.size()), row_, vrow_);
  c.reserve(n);
  for (size_t l = 0; l < k_.size(); ++l) {
    std::copy_n(k_[l].begin(), n * row_, c.k_[l].begin());
    std::copy_n(v_[l].begin(), n * vrow_, c.v_[l].begin());
  }
  c.length_ = n;
  return c;
}

int64_t KvCache::bytes() const { return int64_t(k_.size()) * capacity_ * (row_ + vrow_) * int64_t(sizeof(float)); }

}  // namespace moe
