// Internal to kernels/cpu: what the quantized-matmul variants (qgemm_*.cpp) share.
// Semantics are documented in qmatmul.h.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
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

// Rows of x per pass over the weight rows for the AVX2 kernels' tiled_rows: their int8 copy (K
// bytes a row) within 256 KiB, so it stays in L2 while the weight rows stream past. Without the
// blocks every weight row read all of x again: a prefill expert's 130 rows of Mixtral's K = 14336
// are 1.8 MB, from L3 (the AVX2 prefill, 0.72x -> 0.94x ik_llama.cpp's). Their F8 and MXFP4
// kernels, which read fp32 x, take the same blocks (1 MiB): blocks of 256 KiB of fp32 made
// gpt-oss's AVX2 prefill slower (51-53 against 57-59 tok/s), since each pass decodes the weight
// rows again. AVX-512 runs tiles only up to 11 rows of x, except F8 and MXFP4, whose gpt-oss
// prefill was about 3% slower in blocks (65.8 against 67.9 tok/s): it keeps all rows in one.
constexpr int64_t x_block_rows(int64_t K) {
  const int64_t rows = (int64_t(256) << 10) / (K > 0 ? K : 1) / kMaxTile * kMaxTile;
  return rows > kMaxTile ? rows : kMaxTile;
}

// Runs weight rows [n0, n1) against all rows of x in tiles of up to kMaxTile rows of x, the rows
// of x in blocks of `block` (a multiple of kMaxTile; 0: all in one); Row<MT>::run(w, n, arg, m0,
// out) computes out[i] = y[m0 + i, n] without bias. Each ISA's kernels instantiate it with their
// own Row.
template <template <int> class Row, class Arg>
void tiled_rows(const Job& job, const Arg& arg, int64_t n0, int64_t n1, int64_t block = 0) {
  const int64_t N = job.w.rows, M = job.M;
  if (block <= 0) block = std::max<int64_t>(M, 1);
  float out[kMaxTile];
  for (int64_t mb = 0; mb < M; mb += block) {
    const int64_t me = std::min(M, mb + block);
    for (int64_t n = n0; n < n1; ++n) {
      const float bias = job.bias ? job.bias[n] : 0.0f;
      for (int64_t m0 = mb; m0 < me; m0 += kMaxTile) {
        const int mt = int(std::min<int64_t>(kMaxTile, me - m0));
        switch (mt) {
          case 1: Row<1>::run(job.w, n, arg, m0, out); break;
          case 2: Row<2>::run(job.w, n, arg, m0, out); break;
          case 3: Row<3>::run(job.w, n, arg, m0, out); break;
          default: Row<4>::run(job.w, n, arg, m0, out); break;
        }
        for (int i = 0; i < mt; ++i) job.y[(m0 + i) * N + n] = out[i] + bias;
      }
    }
  }
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
