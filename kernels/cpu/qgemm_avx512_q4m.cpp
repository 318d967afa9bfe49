// AVX-512 VNNI Q4/Q4Z GEMM for many rows of x (prefill, batched decode): "rows of x in lanes".
//
// The chunk kernels of qgemm_avx512.cpp put 4 columns of one 32-block in each int32 lane, so
// every block needs a 16-lane conversion + scale + FMA per (weight row, x row). Here the 16
// lanes are 16 rows of x instead: 4 weight codes are broadcast to all lanes and vpdpbusd'd with
// 4 columns of 16 rows; 8 such steps finish a block for all 16 rows, and one conversion + FMA
// applies its scales. The integer sums are the ones of qmatmul.h, and the float sums run in the
// GEMV's order, so every row of x gets the bits it would get alone.
//
// Per thread: 4 weight rows at a time (their fp16 scales widened to f32, and for many rows of x
// their nibbles unpacked to bytes in an L1-sized scratch; see Unpacked) run against every 16-row
// block of x, up to 128 rows of x per pass so their int8 copy stays in L2 (mlanes::blocks_pass).
// Rows of more than 32 blocks take two blocks of x per weight broadcast.
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
  avector<uint8_t> q;  // int8 codes, stored as bytes
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

// The pass's weight rows, read by the kernel in one of two ways:
// - packed (few blocks of x): in place, rows[j] with block b's 16 bytes at 16 b, byte c holding
//   code c in its low nibble and code 16 + c in its high nibble; the kernel masks each broadcast
//   twice (low codes, and high codes left at 16 x their value) per two vpdpbusd.
// - unpacked (many blocks of x): codes u [NT, K] with block b's 32 codes at 32 pos[b] (its 16 low
//   nibbles, then its 16 high nibbles, as the columns of x are), made once per pass.
// Scales s and zero points z [NT, K / G] are widened to f32 in group order either way.
struct Unpacked {
  const uint8_t* rows[kRowsW] = {};
  std::vector<uint8_t> u;
  std::vector<float> s, z;
};

// Packed weights when a pass runs up to this many 16-row blocks of x (all of x, or the
// mlanes::blocks_pass(K) blocks that fit L2 for wide rows): each pass unpacks the rows again, which
// cost 15-30% of the time at 16 rows of x and broke even with the split nibbles at 64; at 128 rows
// in one pass the split nibbles cost 5-12% (bench_kernels GEMM_M*/Q4g32).
constexpr int64_t kPackedMaxBlocks = 4;

// pos: the visiting order, to unpack the codes; null to leave them packed.
void unpack(const WeightView& w, int64_t n, int nt, const std::vector<int32_t>* pos, Unpacked& p) {
  const int64_t K = w.cols, ng = K / w.group, nb = K / 32;
  if (pos) p.u.resize(size_t(kRowsW * K));
  p.s.resize(size_t(kRowsW * ng));
  p.z.resize(size_t(kRowsW * ng));
  for (int j = 0; j < nt; ++j) {
    const uint8_t* wr = static_cast<const uint8_t*>(w.data) + (n + j) * (K / 2);
    p.rows[j] = wr;
    for (int64_t c = 0; pos && c * 128 < K; ++c) {
      const int64_t left = K - c * 128;
      const __m512i v = left >= 128 ? _mm512_loadu_si512(wr + c * 64)
                                    : _mm512_maskz_loadu_epi8((__mmask64(1) << (left / 2)) - 1, wr + c * 64);
      __m512i pair[2];  // runs 0 and 1, and runs 2 and 3
      split_nibbles(v, pair);
      const __m256i runs[4] = {_mm512_castsi512_si256(pair[0]), _mm512_extracti64x4_epi64(pair[0], 1),
                               _mm512_castsi512_si256(pair[1]), _mm512_extracti64x4_epi64(pair[1], 1)};
      uint8_t* u = &p.u[size_t(j * K)];
      for (int r = 0; r < 4 && c * 4 + r < nb; ++r)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(u + 32 * (*pos)[size_t(c * 4 + r)]), runs[r]);
    }
    // Scales widened; zero points only for Q4Z.
    widen_f16(static_cast<const uint16_t*>(w.scales) + (n + j) * ng, ng, &p.s[size_t(j * ng)]);
    if (w.zeros)
      for (int64_t g = 0; g < ng; ++g) p.z[size_t(j * ng + g)] = float(w.zeros[(n + j) * ng + g]);
  }
}

// The next run of weight rows, prefetched a line per 32-block during the products of this one
// (as in qgemm_avx512_i8m.cpp): codes (ahead bytes) and fp16 scales (sahead bytes).
struct Next {
  const uint8_t* codes = nullptr;
  const uint8_t* scales = nullptr;
  int64_t ahead = 0, sahead = 0;
};

// Where block mb of x and the next MB - 1 blocks are: codes xp (blocks xs bytes apart), sums bp
// and scales dp (blocks bs elements apart), each advanced by one 32-block as a phase moves on.
struct XBlocks {
  const uint8_t* xp;
  const int32_t* bp;
  const float* dp;
  int64_t xs, bs;
  void step() { xp += 8 * 64, bp += kLanes, dp += kLanes; }
};

// One 32-block of MB 16-row blocks of x against NT weight rows (Packed: read in place, else the
// unpacked copy): acc[m * NT + j] += its products. blk is the block's index in the row, g its
// group, k its position in x and the unpacked rows. Each broadcast of 4 weight codes feeds MB
// blocks of x: with MB = 1 the kernel issued more loads (8 of x and 8 broadcasts per 8 vpdpbusd
// and row) than vpdpbusd, and the loads bound it.
template <bool ZP, int NT, int MB, bool Packed>
[[gnu::always_inline]] inline void block_run(const Unpacked& p, int64_t K, int64_t ng, int64_t blk, int64_t g, int64_t k,
                                             const XBlocks& x, const Next& next, __m512* acc) {
  const __m512i low4 = _mm512_set1_epi8(0x0f), high4 = _mm512_set1_epi8(int8_t(0xf0));
  if (k * 64 < next.ahead) _mm_prefetch(reinterpret_cast<const char*>(next.codes + k * 64), _MM_HINT_T0);
  if (k * 64 < next.sahead) _mm_prefetch(reinterpret_cast<const char*>(next.scales + k * 64), _MM_HINT_T0);
  __m512i xv[MB][8];
  for (int m = 0; m < MB; ++m)
    for (int t = 0; t < 8; ++t) xv[m][t] = _mm512_loadu_si512(x.xp + m * x.xs + t * 64);
  __m512i bs[MB];
  __m512 d[MB];
  for (int m = 0; m < MB; ++m) bs[m] = _mm512_loadu_si512(x.bp + m * x.bs), d[m] = _mm512_loadu_ps(x.dp + m * x.bs);
  for (int j = 0; j < NT; ++j) {
    // One chain of 8 vpdpbusd per block of x for MB = 2, two of 4 for MB = 1: vpdpbusd's latency,
    // not its throughput, bounded a lone chain of 8 (the int32 sum is the same). Packed rows
    // always take two: their high codes stay in place (16 x the code, one AND where a shift
    // and an AND split them), and that chain's sum, a multiple of 16, is shifted down once
    // per block (exact). 12 logic ops per row and block became 8 (bench_kernels GEMM_hot_M16).
    constexpr int C = MB == 1 || Packed ? 2 : 1;
    __m512i s[MB][C];
    for (int m = 0; m < MB; ++m) {
      s[m][0] = ZP ? _mm512_setzero_si512() : bs[m];
      if constexpr (C == 2) s[m][1] = _mm512_setzero_si512();
    }
    for (int t = 0; t < 4; ++t) {  // columns 4t.. (s[m][0]) and 16 + 4t.. (s[m][C - 1])
      __m512i lo, hi;
      if constexpr (Packed) {
        int32_t w4;
        std::memcpy(&w4, p.rows[j] + blk * 16 + 4 * t, 4);
        const __m512i b = _mm512_set1_epi32(w4);
        lo = _mm512_and_si512(b, low4), hi = _mm512_and_si512(b, high4);
      } else {
        const uint8_t* w = &p.u[size_t(j * K + k * 32)];
        int32_t w0, w1;
        std::memcpy(&w0, w + 4 * t, 4);
        std::memcpy(&w1, w + 16 + 4 * t, 4);
        lo = _mm512_set1_epi32(w0), hi = _mm512_set1_epi32(w1);
      }
      for (int m = 0; m < MB; ++m) {
        s[m][0] = _mm512_dpbusd_epi32(s[m][0], lo, xv[m][t]);
        s[m][C - 1] = _mm512_dpbusd_epi32(s[m][C - 1], hi, xv[m][4 + t]);
      }
    }
    const __m512 sw = _mm512_set1_ps(p.s[size_t(j * ng + g)]);
    for (int m = 0; m < MB; ++m) {
      __m512i sum = s[m][0];
      if constexpr (Packed) sum = _mm512_add_epi32(sum, _mm512_srai_epi32(s[m][1], 4));
      else if constexpr (C == 2) sum = _mm512_add_epi32(sum, s[m][1]);
      __m512 f = _mm512_cvtepi32_ps(sum);
      if constexpr (ZP)
        f = _mm512_fnmadd_ps(_mm512_set1_ps(p.z[size_t(j * ng + g)]), _mm512_cvtepi32_ps(bs[m]), f);
      acc[m * NT + j] = _mm512_fmadd_ps(f, _mm512_mul_ps(d[m], sw), acc[m * NT + j]);
    }
  }
}

// NT weight rows against MB 16-row blocks of x from mb: out[m * kRowsW + j] lanes =
// y[(mb + m) * 16 + l, n + j]. Long rows: phase by phase (one GEMV lane's blocks, in memory
// order), then tree16 of the 16 partial sums. Short rows (kShortBlocks): lanes L and L + 8
// (blocks b and b + 2 of each quad) side by side, so 8 phases of one to four blocks, not 16 of
// one or two; their sum is tree16's first level, and the rest of the tree follows.
template <bool ZP, int NT, int MB, bool Packed>
void block16(const Unpacked& p, int64_t K, int G, const MActs& a, int64_t mb, const Next& next, __m512* out) {
  const int64_t nb = K / 32, ng = K / G;
  const int gshift = std::countr_zero(unsigned(G / 32));  // groups are 32, 64 or 128 columns
  XBlocks x{&a.q[size_t(mb * K * kLanes)], &a.b[size_t(mb * nb * kLanes)], &a.d[size_t(mb * nb * kLanes)],
            K * kLanes, nb * kLanes};
  constexpr int A = MB * NT;
  int64_t k = 0;  // the block's position in x, the unpacked rows and the prefetch
  if (nb > kShortBlocks) {
    __m512 part[A][16];
    for (int L = 0; L < 16; ++L) {
      __m512 acc[A];
      for (int i = 0; i < A; ++i) acc[i] = _mm512_setzero_ps();
      for (int64_t blk = mlanes::q4_first(L); blk < nb; blk += 16, ++k, x.step())
        block_run<ZP, NT, MB, Packed>(p, K, ng, blk, blk >> gshift, k, x, next, acc);
      for (int i = 0; i < A; ++i) part[i][L] = acc[i];
    }
    for (int m = 0; m < MB; ++m)
      for (int j = 0; j < NT; ++j) out[m * kRowsW + j] = tree16(part[m * NT + j]);
    return;
  }
  __m512 a8[A][8];
  for (int L = 0; L < 8; ++L) {
    __m512 lo[A], hi[A];
    for (int i = 0; i < A; ++i) lo[i] = hi[i] = _mm512_setzero_ps();
    for (int64_t b = mlanes::q4_first(L); b < nb; b += 16) {
      block_run<ZP, NT, MB, Packed>(p, K, ng, b, b >> gshift, k++, x, next, lo);
      x.step();
      if (b + 2 >= nb) continue;
      block_run<ZP, NT, MB, Packed>(p, K, ng, b + 2, (b + 2) >> gshift, k++, x, next, hi);
      x.step();
    }
    for (int i = 0; i < A; ++i) a8[i][L] = _mm512_add_ps(lo[i], hi[i]);
  }
  for (int m = 0; m < MB; ++m)
    for (int j = 0; j < NT; ++j) out[m * kRowsW + j] = tree8(a8[m * NT + j]);
}

// MB blocks of x per call to block16: 2 for long rows, 1 for short rows, whose paired-lane
// accumulators leave no registers for a second block of x (half speed at K = 768).
template <bool ZP, int MB, bool Packed>
void rows_by(const Job& job, const MActs& a, int64_t n0, int64_t n1) {
  const WeightView& w = job.w;
  static thread_local Unpacked p;  // used only by this thread
  const int64_t K = w.cols, ng = K / w.group;
  mlanes::drive<MB>(
      job, a.nmb, n0, n1, [&](int64_t n, int nt) { unpack(w, n, nt, Packed ? nullptr : &a.pos, p); },
      [&](int64_t n, int nt, int64_t mb, int mbt, int next_rows, __m512* out) {
        Next next;
        if (next_rows > 0) {
          next.codes = static_cast<const uint8_t*>(w.data) + (n + nt) * (K / 2);
          next.scales = reinterpret_cast<const uint8_t*>(static_cast<const uint16_t*>(w.scales) + (n + nt) * ng);
          next.ahead = next_rows * K / 2, next.sahead = next_rows * ng * 2;
        }
        mlanes::with_nt(nt, [&](auto NT) {
          if (mbt == MB) block16<ZP, NT, MB, Packed>(p, K, w.group, a, mb, next, out);
          else block16<ZP, NT, 1, Packed>(p, K, w.group, a, mb, next, out);
        });
      },
      [](int64_t) { return 1.0f; });  // exact: the sums already carry every scale
}

template <bool ZP>
void rows(const Job& job, const MActs& a, int64_t n0, int64_t n1) {
  const bool packed = std::min(a.nmb, mlanes::blocks_pass(job.w.cols)) <= kPackedMaxBlocks;
  if (job.w.cols / 32 > kShortBlocks) packed ? rows_by<ZP, 2, true>(job, a, n0, n1) : rows_by<ZP, 2, false>(job, a, n0, n1);
  else packed ? rows_by<ZP, 1, true>(job, a, n0, n1) : rows_by<ZP, 1, false>(job, a, n0, n1);
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
