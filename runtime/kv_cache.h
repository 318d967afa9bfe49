// One sequence's attention state: per layer, keys [length, k_width] and values [length, v_width]
// (MLA caches one row per token, latent + rotary key, and no V), stored as fp32 or rounded to a
// narrower `dtype` (bf16, f16, fp8 e4m3: --kv-dtype); a layer listed in `no_kv` keeps none.
// Rows live in pages of kPageRows rows from a KvPagePool, shared by reference: a prefix (fork)
// holds its source's pages, not a copy, and a page is copied only when a cache that shares it
// writes into it (make_writable). Gated DeltaNet layers (Qwen3-Next) instead keep a fixed-size
// recurrent state (`state_floats` each), with snapshots of it at chosen positions so a fork or
// truncate to an earlier point can restart from one and recompute the rest from the sequence's
// own tokens, which the cache keeps for that.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "kernels/cpu/kv_rows.h"
#include "quant/dtype.h"

namespace moe {

// Where KV pages come from: counts the bytes of the pages alive, each once however many caches
// share it (an engine's KV memory). Pages are zeroed and freed when their last holder lets go.
class KvPagePool {
 public:
  using Page = std::shared_ptr<unsigned char[]>;
  static Page get(const std::shared_ptr<KvPagePool>& pool, size_t bytes);
  int64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  int64_t pages() const { return pages_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> bytes_{0}, pages_{0};
};

class KvCache {
 public:
  static constexpr int kPageShift = 4;
  static constexpr int64_t kPageRows = int64_t(1) << kPageShift;  // rows per page: a fork shares whole pages

  // Throws std::invalid_argument for a dtype other than F32, BF16, F16 and F8E4M3. Without a
  // pool the cache makes its own.
  KvCache(int n_layers, int64_t k_width, int64_t v_width, std::vector<bool> no_kv = {}, int64_t state_floats = 0,
          DType dtype = DType::F32, std::shared_ptr<KvPagePool> pool = {});
  DType dtype() const { return dtype_; }

  int64_t length() const { return length_; }
  // Keeps the first n rows and tokens; pages wholly past them are let go.
  void set_length(int64_t n);
  // Makes rows [0, n) addressable (the pages are allocated now) and rows [length(), n) writable
  // (make_writable): call before writes that may run in parallel.
  void reserve(int64_t n);
  // Gives rows [first, end) pages of their own (copying any page another cache shares), so that
  // put() may write them; reserved rows only.
  void make_writable(int64_t first, int64_t end);
  // Stores token `pos`'s key row (and value row; null when there is no V) of `layer`, rounded to
  // dtype(). The row must be reserved and writable.
  void put(int layer, int64_t pos, const float* k, const float* v);
  // A layer's K (V) rows, columns from `col` on, in the cache's dtype, read in place.
  cpu::KvRows k_rows(int layer, int64_t col = 0) const { return {kp_[size_t(layer)].data(), kPageShift, row_, col}; }
  cpu::KvRows v_rows(int layer, int64_t col = 0) const { return {vp_[size_t(layer)].data(), kPageShift, vrow_, col}; }
  // Any dtype: rows [first, first + n), columns [col, col + width) of K (of V), widened into out [n, width].
  void read_k(int layer, int64_t first, int64_t n, int64_t col, int64_t width, float* out) const;
  void read_v(int layer, int64_t first, int64_t n, int64_t col, int64_t width, float* out) const;
  int64_t row_width() const { return row_; }
  // A new cache holding the first n rows and tokens of this one (recurrent states zeroed): it
  // shares this cache's pages.
  KvCache prefix(int64_t n) const;
  // This cache's memory, shared pages included; private_bytes: what it holds alone besides its
  // pages (recurrent states, snapshots, token ids).
  int64_t bytes() const;
  int64_t private_bytes() const;
  const std::shared_ptr<KvPagePool>& pool() const { return pool_; }

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
  using Page = KvPagePool::Page;
  int64_t pages() const { return capacity_ >> kPageShift; }
  static int64_t pages_for(int64_t rows) { return (rows + kPageRows - 1) >> kPageShift; }
  void resize_pages(int64_t n);  // every KV layer to n pages
  // f(layer, is_v, pages, addresses, page bytes) for every page table this cache keeps.
  template <class F>
  void each_table(F&& f) {
    for (size_t l = 0; l < k_.size(); ++l) {
      if (no_kv_[l]) continue;
      f(l, false, k_[l], kp_[l], size_t(kPageRows * row_ * esize_));
      if (vrow_ > 0) f(l, true, v_[l], vp_[l], size_t(kPageRows * vrow_ * esize_));  // MLA: no V
    }
  }
  unsigned char* at(std::vector<Page>& pages, int64_t row_elems, int64_t pos) const {
    return pages[size_t(pos >> kPageShift)].get() + (pos & (kPageRows - 1)) * row_elems * esize_;
  }

  int64_t row_, vrow_;
  int64_t length_ = 0;
  int64_t capacity_ = 0;  // rows in pages (a multiple of kPageRows)
  std::vector<bool> no_kv_;
  DType dtype_;
  int64_t esize_;  // bytes per stored element
  std::shared_ptr<KvPagePool> pool_;
  std::vector<std::vector<Page>> k_, v_;            // [layer][page]: kPageRows rows each
  std::vector<std::vector<const void*>> kp_, vp_;  // the same pages' addresses (KvRows)
  std::vector<int32_t> tokens_;
  int64_t state_floats_ = 0;
  std::vector<std::vector<float>> state_;  // [layer][state_floats] (empty for layers without)
  std::map<int64_t, std::vector<std::vector<float>>> snapshots_;  // pos -> [layer][state_floats]
};

}  // namespace moe
