// AVX-512 VNNI I8 GEMM for many rows of x (prefill, batched decode): rows of x in lanes, as
// qgemm_avx512_q4m.cpp does for Q4.
//
// The tile kernel of qgemm_avx512_i8f8.cpp feeds vpdpbusd |w| and moves w's sign onto x, three
// vector instructions per 64 products for every (weight row, x row). Here the 16 lanes are 16
// rows of x, stored as unsigned codes xq + 128 (1..255), and 4 signed weight bytes are broadcast
// to all lanes: one vpdpbusd per 64 products. The +128 adds 128 * sum(w) over the block to every
// lane; the accumulator starts at minus that, so the int32 block sums are the exact
// sum q_i xq_i of qmatmul.h and only the fp32 order of the block sums differs.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/qavx512.h"

namespace moe::cpu::qk {

namespace {

using mlanes::kLanes;
using mlanes::kRowsW;

// x in 16-row blocks (rows past M are zero codes, i.e. 128, and scale 0):
//   u [nmb, K/4, 16, 4] uint8: xq + 128 for 4 consecutive columns of the 16 rows in one vector.
//   d [nmb, K/32, 16] f32 block scales.
struct MActs {
  std::vector<uint8_t> u;
  std::vector<float> d;
  int64_t nmb = 0;
};

void prep(const float* x, int64_t M, int64_t K, MActs& a) { a.nmb = mlanes::quantize_lanes(x, M, K, 128, a.u, a.d, nullptr); }

// Minus 128 times each 32-block's sum of weight codes, for NT rows from n: the accumulators'
// start (see the file comment). c [kRowsW, K/32].
void block_offsets(const WeightView& w, int64_t n, int nt, std::vector<int32_t>& c) {
  const int64_t K = w.cols, nb = K / 32;
  c.resize(size_t(kRowsW * nb));
  for (int j = 0; j < nt; ++j) {
    const int8_t* wr = static_cast<const int8_t*>(w.data) + (n + j) * K;
    for (int64_t b = 0; b < nb; ++b) {
      int32_t s = 0;
      for (int i = 0; i < 32; ++i) s += wr[b * 32 + i];
      c[size_t(j * nb + b)] = -128 * s;
    }
  }
}

// NT weight rows from n against 16-row block mb of x: out[j] lanes = the row's sum over blocks
// of d_b * (int32 block sum), before the row scale.
template <int NT>
void block16(const WeightView& w, int64_t n, const std::vector<int32_t>& c, const MActs& a, int64_t mb, __m512* out) {
  const int64_t K = w.cols, nb = K / 32;
  const uint8_t* xp = &a.u[size_t(mb * K * kLanes)];
  const float* dp = &a.d[size_t(mb * nb * kLanes)];
  const int8_t* wr[NT];
  for (int j = 0; j < NT; ++j) wr[j] = static_cast<const int8_t*>(w.data) + (n + j) * K;
  __m512 acc[NT];
  for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t blk = 0; blk < nb; ++blk) {
    __m512i xv[8];
    for (int t = 0; t < 8; ++t) xv[t] = _mm512_loadu_si512(xp + t * 64);
    const __m512 d = _mm512_loadu_ps(dp);
    for (int j = 0; j < NT; ++j) {
      // Two dependency chains of 4, not one of 8 (see qgemm_avx512_q4m.cpp's block16).
      __m512i s0 = _mm512_set1_epi32(c[size_t(j * nb + blk)]), s1 = _mm512_setzero_si512();
      for (int t = 0; t < 4; ++t) {
        int32_t w0, w1;
        std::memcpy(&w0, wr[j] + blk * 32 + 4 * t, 4);
        std::memcpy(&w1, wr[j] + blk * 32 + 16 + 4 * t, 4);
        s0 = _mm512_dpbusd_epi32(s0, xv[t], _mm512_set1_epi32(w0));
        s1 = _mm512_dpbusd_epi32(s1, xv[t + 4], _mm512_set1_epi32(w1));
      }
      acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), d, acc[j]);
    }
    xp += 8 * 64, dp += kLanes;
  }
  for (int j = 0; j < NT; ++j) out[j] = acc[j];
}

void rows(const Job& job, const MActs& a, int64_t n0, int64_t n1) {
  const WeightView& w = job.w;
  const float* scales = static_cast<const float*>(w.scales);
  std::vector<int32_t> c;
  mlanes::drive(
      job, a.nmb, n0, n1, [&](int64_t n, int nt) { block_offsets(w, n, nt, c); },
      [&](int64_t n, int nt, int64_t mb, __m512* out) {
        mlanes::with_nt(nt, [&](auto NT) { block16<NT>(w, n, c, a, mb, out); });
      },
      [&](int64_t n) { return scales[n]; });
}

}  // namespace

std::unique_ptr<Rows> prepare_i8_mlanes(const Job& job) {
  MActs a;
  prep(job.x, job.M, job.w.cols, a);
  return make_rows([job, a = std::move(a)](int64_t n0, int64_t n1) { rows(job, a, n0, n1); });
}

}  // namespace moe::cpu::qk
