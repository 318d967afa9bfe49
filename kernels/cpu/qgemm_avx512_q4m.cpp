// AVX-512 VNNI Q4/Q4Z GEMM for many rows of x (prefill, batched decode): "rows of x in lanes".
//
// The chunk kernels of qgemm_avx512.cpp put 4 columns of one 32-block in each int32 lane, so
// every block needs a 16-lane conversion + scale + FMA per (weight row, x row). Here the 16
// lanes are 16 rows of x instead: 4 weight codes are broadcast to all lanes and vpdpbusd'd with
// 4 columns of 16 rows; 8 such steps finish a block for all 16 rows, and one conversion + FMA
// applies its scales. The integer sums are the ones of qmatmul.h, and the float sums run in the
// GEMV's order, so every row of x gets the bits it would get alone.
//
// Per thread: 4 weight rows at a time are unpacked once (nibbles -> bytes, fp16 scales -> f32)
// into an L1-sized scratch and then run against every 16-row block of x, up to 128 rows of x per
// pass so their int8 copy stays in L2 (mlanes::blocks_pass).
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "kernels/cpu/qavx512.h"

namespace moe::cpu::qk {

namespace {

using mlanes::kLanes;
using mlanes::kRowsW;

// x in 16-row blocks (rows past M are zero), 32-blocks at their positions pos[b] in the kernel's
// visiting order (visit_positions; "k" below):
//   q [nmb, K/4, 16, 4] int8: 4 consecutive columns of the 16 rows in one 64-byte vector.
//   d [nmb, K/32, 16] f32 block scales;  b [nmb, K/32, 16] i32 block code sums, stored as
//   -8 * sum for Q4 (the accumulator's start) and as the sum for Q4Z.
struct MActs {
  std::vector<uint8_t> q;  // int8 codes, stored as bytes
  std::vector<float> d;
  std::vector<int32_t> b, pos;
  int64_t nmb = 0;
};

// Rows of up to this many 32-blocks (K <= 1024) take lanes in pairs (block16): 16 phases of one
// or two blocks cost 20-30% against the old sequential kernel at K = 768.
constexpr int64_t kShortBlocks = 32;

// block16's visiting order: long rows phase by phase, lane L = 0..15; short rows for each pair
// of lanes (L, L + 8), L < 8, every quad's block in lane L and then its block in lane L + 8 (two
// blocks further on). Returns each block's position in that order.
std::vector<int32_t> visit_positions(int64_t nb) {
  if (nb > kShortBlocks) return mlanes::phase_positions(nb, 16, mlanes::q4_first);
  std::vector<int32_t> pos(size_t(nb), 0);
  int32_t k = 0;
  for (int L = 0; L < 8; ++L)
    for (int64_t b = mlanes::q4_first(L); b < nb; b += 16) {
      pos[size_t(b)] = k++;
      if (b + 2 < nb) pos[size_t(b + 2)] = k++;
    }
  return pos;
}

void prep(const float* x, int64_t M, int64_t K, bool zp, MActs& a) {
  a.pos = visit_positions(K / 32);
  a.nmb = mlanes::quantize_lanes(x, M, K, 0, a.pos, a.q, a.d, &a.b);
  if (!zp)
    for (int32_t& s : a.b) s *= -8;
}

// Weight rows unpacked for the pass: codes u [NT, K] with block b's 32 codes at 32 pos[b] (its 16
// low nibbles, then its 16 high nibbles, as the columns of x are), scales s and zero points z
// [NT, K / G] f32 in group order.
struct Unpacked {
  std::vector<uint8_t> u;
  std::vector<float> s, z;
};

void unpack(const WeightView& w, int64_t n, int nt, const std::vector<int32_t>& pos, Unpacked& p) {
  const int64_t K = w.cols, ng = K / w.group, nb = K / 32;
  p.u.resize(size_t(kRowsW * K));
  p.s.resize(size_t(kRowsW * ng));
  p.z.resize(size_t(kRowsW * ng));
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  // Runs 0 and 1 (low 16 bytes, then high 16 bytes, each) from lo and hi, and runs 2 and 3.
  const __m512i idx01 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), idx23 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
  for (int j = 0; j < nt; ++j) {
    const uint8_t* wr = static_cast<const uint8_t*>(w.data) + (n + j) * (K / 2);
    uint8_t* u = &p.u[size_t(j * K)];
    for (int64_t c = 0; c * 128 < K; ++c) {
      const int64_t left = K - c * 128;
      const __m512i v = left >= 128 ? _mm512_loadu_si512(wr + c * 64)
                                    : _mm512_maskz_loadu_epi8((__mmask64(1) << (left / 2)) - 1, wr + c * 64);
      const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      const __m512i r01 = _mm512_permutex2var_epi64(lo, idx01, hi), r23 = _mm512_permutex2var_epi64(lo, idx23, hi);
      const __m256i runs[4] = {_mm512_castsi512_si256(r01), _mm512_extracti64x4_epi64(r01, 1),
                               _mm512_castsi512_si256(r23), _mm512_extracti64x4_epi64(r23, 1)};
      for (int r = 0; r < 4 && c * 4 + r < nb; ++r)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(u + 32 * pos[size_t(c * 4 + r)]), runs[r]);
    }
    // Scales 16 at a time (vcvtph2ps is exact), the rest one by one; zero points only for Q4Z.
    const uint16_t* sr = static_cast<const uint16_t*>(w.scales) + (n + j) * ng;
    float* s = &p.s[size_t(j * ng)];
    int64_t g = 0;
    for (; g + 16 <= ng; g += 16)
      _mm512_storeu_ps(s + g, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sr + g))));
    for (; g < ng; ++g) s[g] = f16_to_f32(sr[g]);
    if (w.zeros)
      for (g = 0; g < ng; ++g) p.z[size_t(j * ng + g)] = float(w.zeros[(n + j) * ng + g]);
  }
}

// The next run of weight rows, prefetched a line per 32-block during the products of this one
// (as in qgemm_avx512_i8m.cpp): codes (ahead bytes) and fp16 scales (sahead bytes).
struct Next {
  const uint8_t* codes = nullptr;
  const uint8_t* scales = nullptr;
  int64_t ahead = 0, sahead = 0;
};

// One 32-block of 16 rows of x (codes xp, sums bp, scales dp) against NT unpacked weight rows:
// acc[j] += its products. g is the block's group, k its position in x and the unpacked rows.
template <bool ZP, int NT>
[[gnu::always_inline]] inline void block_run(const Unpacked& p, int64_t K, int64_t ng, int64_t g, int64_t k,
                                             const uint8_t* xp, const int32_t* bp, const float* dp, const Next& next,
                                             __m512* acc) {
  if (k * 64 < next.ahead) _mm_prefetch(reinterpret_cast<const char*>(next.codes + k * 64), _MM_HINT_T0);
  if (k * 64 < next.sahead) _mm_prefetch(reinterpret_cast<const char*>(next.scales + k * 64), _MM_HINT_T0);
  __m512i xv[8];
  for (int t = 0; t < 8; ++t) xv[t] = _mm512_loadu_si512(xp + t * 64);
  const __m512i bs = _mm512_loadu_si512(bp);
  const __m512 d = _mm512_loadu_ps(dp);
  for (int j = 0; j < NT; ++j) {
    __m512i s0 = ZP ? _mm512_setzero_si512() : bs, s1 = _mm512_setzero_si512();
    mlanes::block_dots(&p.u[size_t(j * K + k * 32)], xv, s0, s1);
    __m512 f = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
    if constexpr (ZP) f = _mm512_fnmadd_ps(_mm512_set1_ps(p.z[size_t(j * ng + g)]), _mm512_cvtepi32_ps(bs), f);
    acc[j] = _mm512_fmadd_ps(f, _mm512_mul_ps(d, _mm512_set1_ps(p.s[size_t(j * ng + g)])), acc[j]);
  }
}

// NT weight rows (unpacked) against 16-row block mb of x: out[j] lanes = y[mb * 16 + l, n + j].
// Long rows: phase by phase (one GEMV lane's blocks, in memory order), then tree16 of the 16
// partial sums. Short rows (kShortBlocks): lanes L and L + 8 (blocks b and b + 2 of each quad)
// side by side, so 8 phases of one to four blocks, not 16 of one or two; their sum is tree16's
// first level, and the rest of the tree follows.
template <bool ZP, int NT>
void block16(const Unpacked& p, int64_t K, int G, const MActs& a, int64_t mb, const Next& next, __m512* out) {
  const int64_t nb = K / 32, ng = K / G;
  const int gshift = std::countr_zero(unsigned(G / 32));  // groups are 32, 64 or 128 columns
  const uint8_t* xp = &a.q[size_t(mb * K * kLanes)];
  const int32_t* bp = &a.b[size_t(mb * nb * kLanes)];
  const float* dp = &a.d[size_t(mb * nb * kLanes)];
  int64_t k = 0;  // the block's position in x, the unpacked rows and the prefetch
  if (nb > kShortBlocks) {
    __m512 part[NT][16];
    for (int L = 0; L < 16; ++L) {
      __m512 acc[NT];
      for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_ps();
      for (int64_t blk = mlanes::q4_first(L); blk < nb; blk += 16, ++k) {
        block_run<ZP, NT>(p, K, ng, blk >> gshift, k, xp, bp, dp, next, acc);
        xp += 8 * 64, bp += kLanes, dp += kLanes;
      }
      for (int j = 0; j < NT; ++j) part[j][L] = acc[j];
    }
    for (int j = 0; j < NT; ++j) out[j] = tree16(part[j]);
    return;
  }
  __m512 a8[NT][8];
  for (int L = 0; L < 8; ++L) {
    __m512 lo[NT], hi[NT];
    for (int j = 0; j < NT; ++j) lo[j] = hi[j] = _mm512_setzero_ps();
    for (int64_t b = mlanes::q4_first(L); b < nb; b += 16) {
      block_run<ZP, NT>(p, K, ng, b >> gshift, k++, xp, bp, dp, next, lo);
      xp += 8 * 64, bp += kLanes, dp += kLanes;
      if (b + 2 >= nb) continue;
      block_run<ZP, NT>(p, K, ng, (b + 2) >> gshift, k++, xp, bp, dp, next, hi);
      xp += 8 * 64, bp += kLanes, dp += kLanes;
    }
    for (int j = 0; j < NT; ++j) a8[j][L] = _mm512_add_ps(lo[j], hi[j]);
  }
  for (int j = 0; j < NT; ++j) out[j] = tree8(a8[j]);
}

template <bool ZP>
void rows(const Job& job, const MActs& a, int64_t n0, int64_t n1) {
  const WeightView& w = job.w;
  static thread_local Unpacked p;  // used only by this thread
  const int64_t K = w.cols, ng = K / w.group;
  mlanes::drive(
      job, a.nmb, n0, n1, [&](int64_t n, int nt) { unpack(w, n, nt, a.pos, p); },
      [&](int64_t n, int nt, int64_t mb, int next_rows, __m512* out) {
        Next next;
        if (next_rows > 0) {
          next.codes = static_cast<const uint8_t*>(w.data) + (n + nt) * (K / 2);
          next.scales = reinterpret_cast<const uint8_t*>(static_cast<const uint16_t*>(w.scales) + (n + nt) * ng);
          next.ahead = next_rows * K / 2, next.sahead = next_rows * ng * 2;
        }
        mlanes::with_nt(nt, [&](auto NT) { block16<ZP, NT>(p, K, w.group, a, mb, next, out); });
      },
      [](int64_t) { return 1.0f; });  // exact: the sums already carry every scale
}

}  // namespace

std::unique_ptr<Rows> prepare_q4_mlanes(const Job& job) {
  const bool zp = job.w.dtype == DType::Q4Z;
  MActs a;
  prep(job.x, job.M, job.w.cols, zp, a);
  return make_rows([job, zp, a = std::move(a)](int64_t n0, int64_t n1) {
    zp ? rows<true>(job, a, n0, n1) : rows<false>(job, a, n0, n1);
  });
}

}  // namespace moe::cpu::qk
