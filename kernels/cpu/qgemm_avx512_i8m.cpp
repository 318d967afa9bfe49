// AVX-512 VNNI I8 GEMM for many rows of x (prefill, batched decode): rows of x in lanes, as
// qgemm_avx512_q4m.cpp does for Q4.
//
// The tile kernel of qgemm_avx512_i8f8.cpp puts 64 columns of one weight row in a vector, for
// every (weight row, x row). Here the 16 lanes are 16 rows of x, and 4 weight bytes are broadcast
// to all lanes: one vpdpbusd per 64 products. vpdpbusd multiplies unsigned by signed bytes, so x
// is stored as xq + 128 and the signed weights, broadcast straight from the matrix, are the
// signed operand. The +128 adds 128 * sum(w) over each half block to every lane; the accumulator
// starts at minus that, summed per run of weight rows as it is first touched. The int32 sums are
// thus the exact sum w_i xq_i of qmatmul.h, and the fp32 sums run in the GEMV's order.
// (The earlier form copied each run of weight rows as w + 128 into an L1 buffer and corrected per
// row of x: bench_kernels GEMM_hot_M16/I8row/qwen3_gate_up, 1 thread, 396-425 GFLOP/s against
// 481-490 now.)
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/qavx512.h"

namespace moe::cpu::qk {

namespace {

using mlanes::kLanes;
using mlanes::kRowsW;

// x in 16-row blocks (rows past M are code 128 = 0 and scale 0), 32-blocks at their phase
// positions pos[b] (mlanes::phase_positions; "k" below):
//   q [nmb, K/4, 16, 4] uint8: xq + 128 for 4 consecutive columns of the 16 rows in one vector.
//   d [nmb, K/32, 16] f32 block scales.
struct MActs {
  avector<uint8_t> q;
  std::vector<float> d;
  std::vector<int32_t> pos;
  int64_t nmb = 0;
};

void prep(const float* x, int64_t M, int64_t K, MActs& a) {
  a.pos = mlanes::phase_positions(K / 32, 8, mlanes::i8_first);
  a.nmb = mlanes::quantize_lanes(x, M, K, 128, a.pos, a.q, a.d, nullptr);
}

// ws [NT, K/32, 2]: -128 * the sum of each 16-column half of each block of NT weight rows from
// n, in block order: 256 bytes (16 halves) per step, one vpdpbusd against 128s per 64 bytes, the
// lanes of each half added by hsum_runs (its lane 4r + c = half 4c + r) and put back in order.
void weight_sums(const WeightView& w, int64_t n, int nt, std::vector<int32_t>& ws) {
  const int64_t K = w.cols, nb = K / 32;
  ws.resize(size_t(kRowsW * nb * 2));
  const __m512i c128 = _mm512_set1_epi8(char(0x80));
  alignas(64) static constexpr int32_t order[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
  const __m512i idx = _mm512_load_si512(order);
  for (int j = 0; j < nt; ++j) {
    const int8_t* src = static_cast<const int8_t*>(w.data) + (n + j) * K;
    int32_t* dst = &ws[size_t(j * nb * 2)];
    int64_t c = 0;
    for (; c + 256 <= K; c += 256) {
      __m512i v[4];
      for (int i = 0; i < 4; ++i)
        v[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), c128, _mm512_loadu_si512(src + c + 64 * i));
      const __m512i h = _mm512_permutexvar_epi32(idx, hsum_runs(v[0], v[1], v[2], v[3]));
      _mm512_storeu_si512(dst + c / 16, _mm512_sub_epi32(_mm512_setzero_si512(), h));
    }
    for (; c < K; c += 16) {
      int32_t t = 0;
      for (int e = 0; e < 16; ++e) t += src[c + e];
      dst[c / 16] = -128 * t;
    }
  }
}

// One 32-block of one weight row against 16 rows of x in lanes: w points at the block's 32 signed
// weight codes (columns 0-15, then 16-31), xv the 8 vectors of x's codes (4 columns each). s0 and
// s1 collect columns 0-15 and 16-31, from their starting values: two dependency chains of 4, not
// one of 8, since vpdpbusd's latency, not its throughput, bounded a chain of 8. The weights are
// vpdpbusd's embedded broadcast operand ({1to16}), in asm because GCC 12 turns
// _mm512_set1_epi32(load) into a separate vpbroadcastd: 3-7% faster (bench_kernels
// GEMM_hot_M16 / M32 I8row, Qwen3 shapes, Zen 4, 1 thread, three alternating rounds).
using Bytes4 [[gnu::may_alias]] = int32_t;  // 4 weight codes as the asm's memory operand
[[gnu::always_inline]] inline void block_dots(const int8_t* w, const __m512i* xv, __m512i& s0, __m512i& s1) {
  const Bytes4* w4 = reinterpret_cast<const Bytes4*>(w);
  for (int t = 0; t < 4; ++t) {
    asm("vpdpbusd %[w]%{1to16%}, %[x], %[s]" : [s] "+v"(s0) : [x] "v"(xv[t]), [w] "m"(w4[t]));
    asm("vpdpbusd %[w]%{1to16%}, %[x], %[s]" : [s] "+v"(s1) : [x] "v"(xv[t + 4]), [w] "m"(w4[t + 4]));
  }
}

// NT weight rows from wr (K bytes apart; ws their sums) against 16-row block mb of x: out[j]
// lanes = the row's sum over blocks of d_b * (int32 sum of each half of the block), before the
// row scale. The sums run in the GEMV's order (qgemm_avx512_i8f8.cpp, i8_gemv_rows: one lane per
// 16-column half), so a row of x gets the same bits here as alone: phase p (block p of each quad
// of 8) keeps the partial sums of lanes 8 (p % 2) + p / 2 (first halves) and that + 4 (second
// halves); then tree16. x is stored in that visiting order; the weights are read in place.
// `next` (ahead bytes; null for none) is the next run's weights: two lines of it are prefetched
// per block, so its DRAM reads overlap these products (the same prefetches issued as one burst
// gained less: M = 16 on a 14336 x 4096 matrix, 600 against 735-805 GFLOP/s).
template <int NT>
void block16(int64_t K, const int8_t* wr, const std::vector<int32_t>& ws, const MActs& a, int64_t mb,
             const int8_t* next, int64_t ahead, __m512* out) {
  const int64_t nb = K / 32;
  const uint8_t* xp = &a.q[size_t(mb * K * kLanes)];
  const float* dp = &a.d[size_t(mb * nb * kLanes)];
  __m512 part[NT][16];
  int64_t k = 0;  // position of the block in x and in the prefetch
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
      for (int j = 0; j < NT; ++j) {
        const int32_t* c = &ws[size_t((j * nb + blk) * 2)];
        __m512i s0 = _mm512_set1_epi32(c[0]), s1 = _mm512_set1_epi32(c[1]);
        block_dots(wr + j * K + blk * 32, xv, s0, s1);
        acc0[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s0), d, acc0[j]);
        acc1[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s1), d, acc1[j]);
      }
      xp += 8 * 64, dp += kLanes;
    }
    const int lane = 8 * (ph % 2) + ph / 2;
    for (int j = 0; j < NT; ++j) part[j][lane] = acc0[j], part[j][lane + 4] = acc1[j];
  }
  for (int j = 0; j < NT; ++j) out[j] = tree16(part[j]);
}

void rows(const Job& job, const MActs& a, int64_t n0, int64_t n1) {
  const WeightView& w = job.w;
  const float* scales = static_cast<const float*>(w.scales);
  const int8_t* data = static_cast<const int8_t*>(w.data);
  const int64_t K = w.cols;
  std::vector<int32_t> ws;
  mlanes::drive<1>(
      job, a.nmb, n0, n1, [&](int64_t n, int nt) { weight_sums(w, n, nt, ws); },
      [&](int64_t n, int nt, int64_t mb, int, int next_rows, __m512* out) {
        const int8_t* next = next_rows ? data + (n + nt) * K : nullptr;
        mlanes::with_nt(nt, [&](auto NT) { block16<NT>(K, data + n * K, ws, a, mb, next, next_rows * K, out); });
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
