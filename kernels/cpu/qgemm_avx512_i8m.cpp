// AVX-512 VNNI I8 GEMM for many rows of x (prefill, batched decode): rows of x in lanes, as
// qgemm_avx512_q4m.cpp does for Q4.
//
// The tile kernel of qgemm_avx512_i8f8.cpp puts 64 columns of one weight row in a vector, for
// every (weight row, x row). Here the 16 lanes are 16 rows of x (signed codes), and 4 weight
// bytes are broadcast to all lanes: one vpdpbusd per 64 products. vpdpbusd wants its broadcast
// operand unsigned, so each run of weight rows is first copied as w + 128 (w xor 0x80) into an
// L1 buffer. The +128 adds 128 * sum(x) over the block to every lane; the accumulator starts at
// minus that (per lane, from the activation prep), so the int32 sums are the exact sum q_i xq_i
// of qmatmul.h, and the fp32 sums run in the GEMV's order. (Correcting on the weight side instead
// costs a sum per weight row and block: at 16 rows of x that pass took as long as the products.)
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/qavx512.h"

namespace moe::cpu::qk {

namespace {

using mlanes::kLanes;
using mlanes::kRowsW;

// x in 16-row blocks (rows past M are zero codes and scale 0), 32-blocks at their phase
// positions pos[b] (mlanes::phase_positions; "k" below):
//   q [nmb, K/4, 16, 4] int8: xq for 4 consecutive columns of the 16 rows in one vector.
//   d [nmb, K/32, 16] f32 block scales.
//   c [nmb, K/32, 2, 16] int32: -128 * the code sum of each 16-column half of the block, the
//   start of that half's accumulator.
struct MActs {
  std::vector<uint8_t> q;
  std::vector<float> d;
  std::vector<int32_t> c, pos;
  int64_t nmb = 0;
};

void prep(const float* x, int64_t M, int64_t K, MActs& a) {
  a.pos = mlanes::phase_positions(K / 32, 8, mlanes::i8_first);
  a.nmb = mlanes::quantize_lanes(x, M, K, 0, a.pos, a.q, a.d, &a.c, true);
  for (int32_t& v : a.c) v *= -128;
}

// NT weight rows from n as unsigned w + 128, row after row [NT, K], each block of 32 at its
// position, for the broadcasts.
void unsigned_rows(const WeightView& w, int64_t n, int nt, const std::vector<int32_t>& pos, std::vector<uint8_t>& wu) {
  const int64_t K = w.cols, nb = K / 32;
  wu.resize(size_t(kRowsW * K));
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  for (int j = 0; j < nt; ++j) {
    const uint8_t* src = static_cast<const uint8_t*>(w.data) + (n + j) * K;
    uint8_t* dst = &wu[size_t(j * K)];
    for (int64_t b = 0; b < nb; ++b)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * pos[size_t(b)]),
                          _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 32 * b)), flip));
  }
}

// One 32-block of one weight row against 16 rows of x in lanes: w holds the block's 32 unsigned
// weight codes (columns 0-15, then 16-31), xv the 8 vectors of x's codes (4 columns each). s0 and
// s1 collect columns 0-15 and 16-31, from their starting values: two dependency chains of 4, not
// one of 8, since vpdpbusd's latency, not its throughput, bounded a chain of 8.
[[gnu::always_inline]] inline void block_dots(const uint8_t* w, const __m512i* xv, __m512i& s0, __m512i& s1) {
  for (int t = 0; t < 4; ++t) {
    int32_t w0, w1;
    std::memcpy(&w0, w + 4 * t, 4);
    std::memcpy(&w1, w + 16 + 4 * t, 4);
    s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32(w0), xv[t]);
    s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32(w1), xv[t + 4]);
  }
}

// NT weight rows from n against 16-row block mb of x: out[j] lanes = the row's sum over blocks
// of d_b * (int32 sum of each half of the block), before the row scale. The sums run in the
// GEMV's order (qgemm_avx512_i8f8.cpp, i8_gemv_rows: one lane per 16-column half), so a row of
// x gets the same bits here as alone: phase p (block p of each quad of 8, in memory order) keeps
// the partial sums of lanes 8 (p % 2) + p / 2 (first halves) and that + 4 (second halves); then
// tree16. `next` (ahead bytes; null for none) is the next run's weights: two lines of it are
// prefetched per block, so its DRAM reads overlap these products instead of stalling the next
// copy (the same prefetches issued as one burst during the copy gained less: M = 16 on a 14336 x
// 4096 matrix, 600 against 735-805 GFLOP/s).
template <int NT>
void block16(int64_t K, const std::vector<uint8_t>& wu, const MActs& a, int64_t mb, const uint8_t* next, int64_t ahead,
             __m512* out) {
  const int64_t nb = K / 32;
  const uint8_t* xp = &a.q[size_t(mb * K * kLanes)];
  const float* dp = &a.d[size_t(mb * nb * kLanes)];
  const int32_t* cp = &a.c[size_t(mb * nb * 2 * kLanes)];
  __m512 part[NT][16];
  int64_t k = 0;  // position of the block in x, the weight copy and the prefetch
  for (int ph = 0; ph < 8; ++ph) {
    __m512 acc0[NT], acc1[NT];
    for (int j = 0; j < NT; ++j) acc0[j] = acc1[j] = _mm512_setzero_ps();
    for (int64_t blk = mlanes::i8_first(ph); blk < nb; blk += 8, ++k) {
      if (next && k * 128 < ahead) {
        _mm_prefetch(reinterpret_cast<const char*>(next + k * 128), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(next + k * 128 + 64), _MM_HINT_T0);
      }
      __m512i xv[8];
      for (int t = 0; t < 8; ++t) xv[t] = _mm512_loadu_si512(xp + t * 64);
      const __m512 d = _mm512_loadu_ps(dp);
      const __m512i c0 = _mm512_loadu_si512(cp), c1 = _mm512_loadu_si512(cp + kLanes);
      for (int j = 0; j < NT; ++j) {
        __m512i s0 = c0, s1 = c1;
        block_dots(&wu[size_t(j * K + k * 32)], xv, s0, s1);
        acc0[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), d, acc0[j]);
        acc1[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), d, acc1[j]);
      }
      xp += 8 * 64, dp += kLanes, cp += 2 * kLanes;
    }
    const int lane = 8 * (ph % 2) + ph / 2;
    for (int j = 0; j < NT; ++j) part[j][lane] = acc0[j], part[j][lane + 4] = acc1[j];
  }
  for (int j = 0; j < NT; ++j) out[j] = tree16(part[j]);
}

void rows(const Job& job, const MActs& a, int64_t n0, int64_t n1) {
  const WeightView& w = job.w;
  const float* scales = static_cast<const float*>(w.scales);
  const int64_t K = w.cols;
  std::vector<uint8_t> wu;
  mlanes::drive<1>(
      job, a.nmb, n0, n1, [&](int64_t n, int nt) { unsigned_rows(w, n, nt, a.pos, wu); },
      [&](int64_t n, int nt, int64_t mb, int, int next_rows, __m512* out) {
        const uint8_t* next = next_rows ? static_cast<const uint8_t*>(w.data) + (n + nt) * K : nullptr;
        mlanes::with_nt(nt, [&](auto NT) { block16<NT>(K, wu, a, mb, next, next_rows * K, out); });
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
