// Where a KV cache's rows are: in pages of 2^shift rows each (runtime/kv_cache.h keeps each
// sequence's rows in fixed-size pages that sequences share by reference), or in one contiguous
// buffer (one page that never ends). The attention kernels read rows through this.
#pragma once
#include <cstdint>

namespace moe::cpu {

struct KvRows {
  const void* const* pages = nullptr;  // pages[i] holds rows [i << shift, (i + 1) << shift)
  int shift = 62;                      // 62: every row is in pages[0] (a contiguous buffer)
  int64_t stride = 0;                  // elements from one row to the next within a page
  int64_t col = 0;                     // elements from a row's start to the first one read

  // Row p's element `col`, as E (the cache's stored type).
  template <class E>
  const E* row(int64_t p) const {
    return static_cast<const E*>(pages[p >> shift]) + (p & ((int64_t(1) << shift) - 1)) * stride + col;
  }
  // Whether rows [p, p + n) lie in one page (so that one pointer stepping by `stride` reads them).
  bool one_page(int64_t p, int64_t n) const { return (p >> shift) == ((p + n - 1) >> shift); }
  // The same rows from `c` more elements on (another head's columns).
  KvRows at_col(int64_t c) const { return {pages, shift, stride, col + c}; }
};

// A contiguous buffer as KvRows. `base` is referenced, not copied: it must outlive the rows.
inline KvRows flat_rows(const void* const& base, int64_t stride, int64_t col = 0) { return {&base, 62, stride, col}; }

}  // namespace moe::cpu
