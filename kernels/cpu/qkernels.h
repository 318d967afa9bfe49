// Internal to kernels/cpu: what the quantized-matmul variants (qgemm_*.cpp) share.
// Semantics are documented in qmatmul.h.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/cpu/thread_pool.h"
#include "quant/weight_view.h"

namespace moe::cpu::qk {

// One call's operands. x: [M, K], y: [M, N], bias: [N] or nullptr.
struct Job {
  const float* x;
  int64_t M;
  WeightView w;
  float* y;
  const float* bias;
};

// The one definition of the per-32-block activation scale: returns the multiplier that maps
// the block to [-127, 127] (0 for an all-zero block) and stores the dequantization step in *d.
// SIMD variants compute amax (exact) with vectors and then call this, so the int8 codes agree.
inline float act_inv_scale(float amax, float* d) {
  *d = amax / 127.0f;
  return amax != 0.0f ? 127.0f / amax : 0.0f;
}

// From this many rows of x on, AVX-512's Q4/Q4Z and I8 kernels put 16 rows of x in the vector
// lanes (qgemm_avx512_q4m.cpp, qgemm_avx512_i8m.cpp), computing whole 16-row blocks.
constexpr int64_t kMlanesMinRows = 12;
// Whether an AVX-512 job of this dtype and M runs those kernels (the dispatch and the cost split
// of qmatmul_many both ask).
inline bool mlanes_job(DType t, int64_t M) {
  return M >= kMlanesMinRows && (t == DType::Q4 || t == DType::Q4Z || t == DType::I8);
}

// Grain of the row split: small matrices stay on one thread.
inline int64_t row_grain(int64_t K) { return K >= 16384 ? 1 : 16384 / K; }

constexpr int kMaxTile = 4;  // rows of x per pass over a weight row (register tile)

// Weight rows per pass over the tiles of x for the AVX2 kernels' tiled_rows: about 128 KiB of
// weights (row_bytes each), which stay in L2 while each tile of x (kMaxTile rows, in L1 for K up
// to a few thousand) meets them. Before, each weight row met every tile of x in turn, so the
// tiles came from L2, a byte of x per multiply-add; now the weights come from L2, an eighth of a
// byte per multiply-add (Q4, 4 rows of x). On a Zen 3 this alone was within the noise of
// bench_kernels (the spills of the Q4 tile were the cost: qgemm_avx2_q4m.cpp). AVX-512 runs tiles
// only up to 11 rows of x, which fit in L1 whichever the order, and keeps the per-row order
// (chunk 1).
constexpr int64_t weight_chunk_rows(int64_t row_bytes) {
  const int64_t rows = (int64_t(128) << 10) / (row_bytes > 0 ? row_bytes : 1);
  return rows > 1 ? rows : 1;
}

// Runs weight rows [n0, n1) against all rows of x in tiles of up to kMaxTile rows of x;
// Row<MT>::run(w, n, arg, m0, out) computes out[i] = y[m0 + i, n] without bias. The weight rows
// come in chunks of `chunk`: each tile of x meets a chunk's rows before the next tile (chunk 1:
// each weight row meets every tile before the next row). Each (n, m) is computed alone, so the
// order changes no bits. Each ISA's kernels instantiate it with their own Row.
template <template <int> class Row, class Arg>
void tiled_rows(const Job& job, const Arg& arg, int64_t n0, int64_t n1, int64_t chunk = 1) {
  const int64_t N = job.w.rows, M = job.M;
  float out[kMaxTile];
  auto pass = [&](auto mt_const, int64_t m0, int64_t nc, int64_t ne) {
    constexpr int mt = decltype(mt_const)::value;
    for (int64_t n = nc; n < ne; ++n) {
      Row<mt>::run(job.w, n, arg, m0, out);
      const float bias = job.bias ? job.bias[n] : 0.0f;
      for (int i = 0; i < mt; ++i) job.y[(m0 + i) * N + n] = out[i] + bias;
    }
  };
  auto tile = [&](int64_t m0, int64_t nc, int64_t ne) {
    switch (std::min<int64_t>(kMaxTile, M - m0)) {
      case 1: return pass(std::integral_constant<int, 1>{}, m0, nc, ne);
      case 2: return pass(std::integral_constant<int, 2>{}, m0, nc, ne);
      case 3: return pass(std::integral_constant<int, 3>{}, m0, nc, ne);
      default: return pass(std::integral_constant<int, kMaxTile>{}, m0, nc, ne);
    }
  };
  chunk = std::max<int64_t>(chunk, 1);
  for (int64_t nc = n0; nc < n1; nc += chunk)
    for (int64_t m0 = 0; m0 < M; m0 += kMaxTile) tile(m0, nc, std::min(n1, nc + chunk));
}

// One call with its activations prepared (quantized, laid out for the variant): computes
// y[:, n0:n1] for any split of the weight rows, so several calls can share one parallel
// section (qmatmul_many). Owns its prepared activations; the Job's pointers must outlive it.
struct Rows {
  virtual ~Rows() = default;
  virtual void run(int64_t n0, int64_t n1) const = 0;
};

template <class F>
struct FnRows final : Rows {
  F f;
  explicit FnRows(F g) : f(std::move(g)) {}
  void run(int64_t n0, int64_t n1) const override { f(n0, n1); }
};
template <class F>
std::unique_ptr<Rows> make_rows(F f) {
  return std::make_unique<FnRows<F>>(std::move(f));
}

// Activations prepared once for every job of one qmatmul_many call that has the same x, M, K
// and activation layout (`kind`): a decode step's gate and up projections of all its experts
// read the same token. Not thread-safe: only the serial preparation uses it.
class PrepCache {
 public:
  template <class A, class Make>
  std::shared_ptr<const A> get(const Job& job, int kind, Make&& make) {
    for (const Entry& e : entries_)
      if (e.x == job.x && e.M == job.M && e.K == job.w.cols && e.kind == kind) return std::static_pointer_cast<const A>(e.acts);
    std::shared_ptr<const A> a = make();
    entries_.push_back({job.x, job.M, job.w.cols, kind, a});
    return a;
  }

 private:
  struct Entry {
    const float* x;
    int64_t M, K;
    int kind;
    std::shared_ptr<const void> acts;
  };
  std::vector<Entry> entries_;
};

std::unique_ptr<Rows> prepare_scalar(const Job& job);
std::unique_ptr<Rows> prepare_avx2(const Job& job);
// cache: nullptr, or where jobs of one call share their prepared activations.
std::unique_ptr<Rows> prepare_avx512(const Job& job, PrepCache* cache = nullptr);

}  // namespace moe::cpu::qk
