// AVX-512 (F, BW, VL, VNNI) Q4/Q4Z matmul. Compiled with per-file ISA flags
// (kernels/CMakeLists.txt) and only called after CPUID said yes (qmatmul.cpp).
//
// Q4/Q4Z with int8 activations and vpdpbusd (u8 x s8 -> s32, 4 products per lane): each 64-byte
// load of weights feeds 128 multiply-adds per instruction pair. Also the AVX-512 dispatcher.
// Paths by rows of x (M):
//   M == 1       q4_gemv: 1 weight row x 512 columns per step (memory-bound decode).
//   1 < M < 12   q4_gemv_tile: the same sums, each quad transposed and unpacked once and reused
//                from registers across up to 4 rows of x (x in the same transposed layout).
//   M >= 12      rows of x in vector lanes (qgemm_avx512_q4m.cpp); from M > 16, where AMX is
//                enabled, the same sums on the tile unit (qgemm_amx.cpp, amx_gemm).
// I8 and F8: qgemm_avx512_i8f8.cpp.
#include <immintrin.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/cpu/amx.h"
#include "kernels/cpu/qavx512.h"
#include "kernels/cpu/qkernels.h"

namespace moe::cpu::qk {

namespace {


// ---- Q4 / Q4Z ---------------------------------------------------------------------------
// Activations of one call, per row of x, in chunks of 128 columns (kp = K rounded up to 128;
// the padding is zero and so contributes nothing):
//   q [M, kp] int8: in chunk c, bytes 0..63 hold the low-nibble columns (run r of 32 columns:
//     columns 32r..32r+15 at 16r) and bytes 64..127 the high-nibble columns (32r+16..32r+31),
//     so a 64-byte load lines up with the unpacked nibbles of 64 weight bytes.
//   d [M, kp/128, 16] f32: lane 4r+j = the block scale of run r (vpdpbusd lane 4r+j only sums
//     bytes of run r).
//   b [M, kp/128, 16] i32: per lane, the sum of the codes feeding it; stored as -8 * sum for
//     Q4 (sum (q - 8) x = sum q x - 8 sum x; added as bh below) and as the sum for Q4Z.
// For the GEMV kernel, per quad of 4 chunks (512 columns; nq = ceil(chunks / 4), chunks past
// the row read as 0), in its lane order 4r + c (run r of chunk c; see hsum_runs):
//   dq [M, nq, 16] f32 block scales;  bq [M, nq, 16] f32 block code sums (Q4Z only);
//   bh [M, nq, 16] i32 (Q4 only): hsum_runs of the quad's four chunks of b. The kernels add it
//   once after hsum_runs instead of starting each chunk's vpdpbusd from b: three fewer loads per
//   quad and row of x, and the same int32 sums (wrapping adds in any order give the same bits).
struct Q4Acts {
  std::vector<int8_t> q, qt;  // qt: the tile kernel's copy (prep_q4_tiles), for M > 1 only
  std::vector<float> d, dq, bq;
  std::vector<int32_t> b, bh;
  int64_t kp = 0, nq = 0;
};

void prep_q4(const float* x, int64_t M, int64_t K, bool zp, Q4Acts& a) {
  a.kp = (K + 127) / 128 * 128;
  const int64_t nc = a.kp / 128;
  a.q.resize(size_t(M * a.kp));
  a.d.resize(size_t(M * nc * 16));
  a.b.resize(size_t(M * nc * 16));
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < nc; ++c) {
      int8_t* q = &a.q[size_t(m * a.kp + c * 128)];
      float* d = &a.d[size_t((m * nc + c) * 16)];
      for (int r = 0; r < 4; ++r) {
        const int64_t col = c * 128 + r * 32;
        float dr = 0.0f;
        if (col < K) {
          __m512i qa, qb;
          quant_block(x + m * K + col, &dr, &qa, &qb);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * r), _mm512_cvtsepi32_epi8(qa));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 64 + 16 * r), _mm512_cvtsepi32_epi8(qb));
        } else {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 16 * r), _mm_setzero_si128());
          _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 64 + 16 * r), _mm_setzero_si128());
        }
        for (int j = 0; j < 4; ++j) d[4 * r + j] = dr;
      }
      // Lane sums via the same instruction the kernel uses (1 x q), exact in int32.
      const __m512i lo = _mm512_loadu_si512(q), hi = _mm512_loadu_si512(q + 64);
      __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, lo), ones, hi);
      if (!zp) s = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(s, 3));
      _mm512_storeu_si512(&a.b[size_t((m * nc + c) * 16)], s);
    }
  a.nq = (nc + 3) / 4;
  a.dq.assign(size_t(M * a.nq * 16), 0.0f);  // chunks past the row stay 0
  if (zp) a.bq.assign(size_t(M * a.nq * 16), 0.0f);
  if (!zp) {
    a.bh.resize(size_t(M * a.nq * 16));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t qd = 0; qd < a.nq; ++qd) {
        __m512i c4[4];
        for (int c = 0; c < 4; ++c)
          c4[c] = qd * 4 + c < nc ? _mm512_loadu_si512(&a.b[size_t((m * nc + qd * 4 + c) * 16)]) : _mm512_setzero_si512();
        _mm512_storeu_si512(&a.bh[size_t((m * a.nq + qd) * 16)], hsum_runs(c4[0], c4[1], c4[2], c4[3]));
      }
  }
  for (int64_t m = 0; m < M; ++m)
    for (int64_t qd = 0; qd < a.nq; ++qd)
      for (int c = 0; c < 4 && qd * 4 + c < nc; ++c)
        for (int r = 0; r < 4; ++r) {
          const int64_t chunk = (m * nc + qd * 4 + c) * 16, o = (m * a.nq + qd) * 16 + 4 * r + c;
          a.dq[size_t(o)] = a.d[size_t(chunk + 4 * r)];
          if (zp) {
            const int32_t* b = &a.b[size_t(chunk + 4 * r)];
            a.bq[size_t(o)] = float(b[0] + b[1] + b[2] + b[3]);
          }
        }
}

// A quad's 16 group values (fp16 scales or u8 zero points, already widened to f32 in memory
// order: group index = chunk * GPC + run * GPC / 4) in the lane order 4r + c of hsum_runs.
template <int G>
inline __m512 quad_lanes(__m512 v) {
  alignas(64) static constexpr int32_t idx32[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
  alignas(64) static constexpr int32_t idx64[16] = {0, 2, 4, 6, 0, 2, 4, 6, 1, 3, 5, 7, 1, 3, 5, 7};
  alignas(64) static constexpr int32_t idx128[16] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};
  const int32_t* idx = G == 32 ? idx32 : G == 64 ? idx64 : idx128;
  return _mm512_permutexvar_ps(_mm512_load_si512(idx), v);
}

// The quad's scales / zero points; `ng` < 4 * 128 / G groups in the row's last quad.
template <int G>
inline __m512 quad_scales(const uint16_t* sp, int ng) {
  constexpr int full = 4 * 128 / G;
  if constexpr (G == 32) {
    const __m256i h = ng >= full ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sp))
                                 : _mm256_maskz_loadu_epi16(__mmask16((1u << ng) - 1), sp);
    return quad_lanes<G>(_mm512_cvtph_ps(h));
  } else {
    const __m128i h = ng >= full ? (G == 64 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(sp))
                                            : _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sp)))
                                 : _mm_maskz_loadu_epi16(__mmask8((1u << ng) - 1), sp);
    if constexpr (G == 64) return quad_lanes<G>(_mm512_castps256_ps512(_mm256_cvtph_ps(h)));
    else return quad_lanes<G>(_mm512_castps128_ps512(_mm_cvtph_ps(h)));
  }
}

template <int G>
inline __m512 quad_zeros(const uint8_t* zp, int ng) {
  constexpr int full = 4 * 128 / G;
  __m128i z;
  if (ng < full) z = _mm_maskz_loadu_epi8(__mmask16((1u << ng) - 1), zp);
  else if constexpr (G == 32) z = _mm_loadu_si128(reinterpret_cast<const __m128i*>(zp));
  else if constexpr (G == 64) z = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(zp));
  else z = _mm_loadu_si32(zp);
  return quad_lanes<G>(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(z)));
}

// A row's last quad when it holds two chunks (K = 768: Qwen3's down projection), half the work of
// four: t[0] = dwords (v0_0, v1_0, v0_1, v1_1) and t[1] = (v0_2, v1_2, v0_3, v1_3) in each 128-bit
// lane; their products then add up with one more shift (two_chunk_sums).
inline void pair_dwords(const __m512i* v, __m512i* t) {
  t[0] = _mm512_unpacklo_epi32(v[0], v[1]), t[1] = _mm512_unpackhi_epi32(v[0], v[1]);
}
inline __m512i two_chunk_sums(__m512i s) {  // lanes 4r, 4r + 1: runs r of chunks 0, 1; others 0
  return _mm512_maskz_add_epi32(0x3333, s, _mm512_bsrli_epi128(s, 8));
}

// Chunks of the quad that starts at column col of a K-column row (4 but in the last, partial one).
inline int quad_chunks(int64_t K, int64_t col) { return int(std::min<int64_t>(4, (K - col + 127) / 128)); }

// x for the tile kernel (Q4Acts::qt): each quad's chunks arranged as transpose_dwords (or, for a
// last quad of two chunks, pair_dwords) arranges the weights, low-nibble halves and high-nibble
// halves apart: [t0 low, t0 high, t1 low, t1 high, ...], 512 bytes a quad.
void prep_q4_tiles(int64_t M, int64_t K, Q4Acts& a) {
  const int64_t nc = a.kp / 128;
  a.qt.assign(size_t(M * a.nq * 512), 0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t qd = 0; qd < a.nq; ++qd) {
      const int chunks = quad_chunks(K, qd * 512);
      int8_t* dst = &a.qt[size_t((m * a.nq + qd) * 512)];
      for (int half = 0; half < 2; ++half) {
        __m512i v[4], t[4];
        for (int c = 0; c < 4; ++c)
          v[c] = qd * 4 + c < nc ? _mm512_loadu_si512(&a.q[size_t(m * a.kp + (qd * 4 + c) * 128 + half * 64)]) : _mm512_setzero_si512();
        if (chunks == 2) pair_dwords(v, t);
        else transpose_dwords(v, t);
        for (int j = 0; j < (chunks == 2 ? 2 : 4); ++j) _mm512_storeu_si512(dst + j * 128 + half * 64, t[j]);
      }
    }
}

// Weight row n against MT rows of x from m0, 4 chunks (512 columns) per step. The quad's packed
// weights are transposed once (transpose_dwords) and unpacked, then each row of x takes 8
// vpdpbusd whose lanes already hold whole runs: no per-row horizontal sums. The int -> float
// conversion and the scale FMA run once per 16 runs. The row's last quad may be partial: masked
// loads, missing chunks contribute 0. out[i] = y[m0 + i, n] without bias.
//
// The lane order (lane 4r + c = run r of chunk c, across quads) and lanes_sum are the sum order
// of every Q4 path, rows in lanes included (qgemm_avx512_q4m.cpp), so y does not depend on M.
template <int G, bool ZP, int MT>
[[gnu::always_inline]] inline void q4_gemv_tile(const WeightView& w, int64_t n, const Q4Acts& a, int64_t m0, float* out) {
  constexpr int GPC = 128 / G, GPQ = 4 * GPC;  // groups per chunk, per quad
  const int64_t K = w.cols, gpr = K / G, full_quads = K / 512, xs = a.nq * 512;
  const uint8_t* wp = static_cast<const uint8_t*>(w.data) + n * (K / 2);
  const uint16_t* sp = static_cast<const uint16_t*>(w.scales) + n * gpr;
  const uint8_t* zp = ZP ? w.zeros + n * gpr : nullptr;
  const int8_t* xp = a.qt.data() + m0 * xs;
  const int32_t* bh = ZP ? nullptr : a.bh.data() + m0 * a.nq * 16;
  const float* dq = a.dq.data() + m0 * a.nq * 16;
  const float* bq = ZP ? a.bq.data() + m0 * a.nq * 16 : nullptr;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  __m512 acc[MT];
  for (int i = 0; i < MT; ++i) acc[i] = _mm512_setzero_ps();
  int64_t col = 0;
  auto finish = [&](int i, __m512i h, __m512 sw, __m512 zw) {
    if constexpr (!ZP) h = _mm512_add_epi32(h, _mm512_loadu_si512(bh + i * a.nq * 16));
    __m512 f = _mm512_cvtepi32_ps(h);
    if constexpr (ZP) f = _mm512_fnmadd_ps(zw, _mm512_loadu_ps(bq + i * a.nq * 16), f);
    acc[i] = _mm512_fmadd_ps(f, _mm512_mul_ps(sw, _mm512_loadu_ps(dq + i * a.nq * 16)), acc[i]);
  };
  auto step = [&](auto tail) {
    constexpr bool Tail = decltype(tail)::value;
    const int64_t left = K - col;  // columns from this quad on
    const int ng = Tail ? int(left / G) : GPQ;
    const int chunks = Tail ? quad_chunks(K, col) : 4;
    __m512i v[4], t[4], lo[4], hi[4];
    for (int c = 0; c < 4; ++c) prefetch(wp + c * 64);
    for (int c = 0; c < 4; ++c) {
      const int64_t cl = left - c * 128;  // columns of chunk c
      v[c] = !Tail || cl >= 128 ? _mm512_loadu_si512(wp + c * 64)
             : cl > 0           ? _mm512_maskz_loadu_epi8((__mmask64(1) << (cl / 2)) - 1, wp + c * 64)
                                : _mm512_setzero_si512();
    }
    const __m512 sw = quad_scales<G>(sp, ng);
    const __m512 zw = ZP ? quad_zeros<G>(zp, ng) : _mm512_setzero_ps();
    if (Tail && chunks == 2) {
      pair_dwords(v, t);
      for (int j = 0; j < 2; ++j) lo[j] = _mm512_and_si512(t[j], low4), hi[j] = _mm512_and_si512(_mm512_srli_epi16(t[j], 4), low4);
      for (int i = 0; i < MT; ++i) {
        const int8_t* xi = xp + i * xs;
        __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[0], _mm512_loadu_si512(xi));
        s = _mm512_dpbusd_epi32(s, hi[0], _mm512_loadu_si512(xi + 64));
        s = _mm512_dpbusd_epi32(s, lo[1], _mm512_loadu_si512(xi + 128));
        s = _mm512_dpbusd_epi32(s, hi[1], _mm512_loadu_si512(xi + 192));
        finish(i, two_chunk_sums(s), sw, zw);
      }
    } else {
      transpose_dwords(v, t);
      for (int j = 0; j < 4; ++j) lo[j] = _mm512_and_si512(t[j], low4), hi[j] = _mm512_and_si512(_mm512_srli_epi16(t[j], 4), low4);
      for (int i = 0; i < MT; ++i) {
        const int8_t* xi = xp + i * xs;
        __m512i s0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[0], _mm512_loadu_si512(xi));
        __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[2], _mm512_loadu_si512(xi + 256));
        s0 = _mm512_dpbusd_epi32(s0, hi[0], _mm512_loadu_si512(xi + 64));
        s1 = _mm512_dpbusd_epi32(s1, hi[2], _mm512_loadu_si512(xi + 320));
        s0 = _mm512_dpbusd_epi32(s0, lo[1], _mm512_loadu_si512(xi + 128));
        s1 = _mm512_dpbusd_epi32(s1, lo[3], _mm512_loadu_si512(xi + 384));
        s0 = _mm512_dpbusd_epi32(s0, hi[1], _mm512_loadu_si512(xi + 192));
        s1 = _mm512_dpbusd_epi32(s1, hi[3], _mm512_loadu_si512(xi + 448));
        finish(i, _mm512_add_epi32(s0, s1), sw, zw);
      }
    }
    wp += 256, sp += GPQ, xp += 512, dq += 16, col += 512;
    if constexpr (ZP) zp += GPQ, bq += 16;
    else bh += 16;
  };
  for (int64_t qd = 0; qd < full_quads; ++qd) step(std::false_type{});
  if (full_quads < a.nq) step(std::true_type{});
  for (int i = 0; i < MT; ++i) out[i] = lanes_sum(acc[i]);
}

// GEMV (one row of x): q4_gemv_tile's sums for MT = 1, in the same order, written for decode's
// weight stream alone: the tile template at MT = 1 ran the in-cache GEMV at 60-80% of this
// (768 x 2048 and 2048 x 768, 1 thread).
template <int G, bool ZP>
[[gnu::always_inline]] inline float q4_gemv(const WeightView& w, int64_t n, const Q4Acts& a) {
  constexpr int GPC = 128 / G, GPQ = 4 * GPC;  // groups per chunk, per quad
  const int64_t K = w.cols, gpr = K / G, full_quads = K / 512;
  const uint8_t* wp = static_cast<const uint8_t*>(w.data) + n * (K / 2);
  const uint16_t* sp = static_cast<const uint16_t*>(w.scales) + n * gpr;
  const uint8_t* zp = ZP ? w.zeros + n * gpr : nullptr;
  const int8_t* xp = a.q.data();
  const int32_t* bh = ZP ? nullptr : a.bh.data();
  const float* dq = a.dq.data();
  const float* bq = ZP ? a.bq.data() : nullptr;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  __m512 acc = _mm512_setzero_ps();
  auto step = [&](auto tail) {
    constexpr bool Tail = decltype(tail)::value;
    const int64_t left = K - (xp - a.q.data());  // columns from this quad on
    const int ng = Tail ? int(left / G) : GPQ;
    __m512i s[4];
    for (int c = 0; c < 4; ++c) prefetch(wp + c * 64);
    for (int c = 0; c < 4; ++c) {
      const int64_t cl = left - c * 128;  // columns of chunk c
      if (Tail && cl <= 0) {
        s[c] = _mm512_setzero_si512();
        continue;
      }
      const __m512i v = !Tail || cl >= 128 ? _mm512_loadu_si512(wp + c * 64)
                                           : _mm512_maskz_loadu_epi8((__mmask64(1) << (cl / 2)) - 1, wp + c * 64);
      const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      s[c] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(xp + c * 128));
      s[c] = _mm512_dpbusd_epi32(s[c], hi, _mm512_loadu_si512(xp + c * 128 + 64));
    }
    __m512i h = hsum_runs(s[0], s[1], s[2], s[3]);
    if constexpr (!ZP) h = _mm512_add_epi32(h, _mm512_loadu_si512(bh));
    __m512 f = _mm512_cvtepi32_ps(h);
    if constexpr (ZP) f = _mm512_fnmadd_ps(quad_zeros<G>(zp, ng), _mm512_loadu_ps(bq), f);
    acc = _mm512_fmadd_ps(f, _mm512_mul_ps(quad_scales<G>(sp, ng), _mm512_loadu_ps(dq)), acc);
    wp += 256, sp += GPQ, xp += 512, dq += 16;
    if constexpr (ZP) zp += GPQ, bq += 16;
    else bh += 16;
  };
  for (int64_t qd = 0; qd < full_quads; ++qd) step(std::false_type{});
  if (full_quads < a.nq) step(std::true_type{});
  return lanes_sum(acc);
}

// Decode (M = 1): weight rows [n0, n1) one at a time, the row loop inside the kernel. Calling a
// kernel once per row and passing its sum back through memory cost a fifth of the kernel's
// time at the row boundaries (K = 768 rows are only 384 bytes).
template <int G, bool ZP>
void q4_gemv_rows(const Job& job, const Q4Acts& a, int64_t n0, int64_t n1) {
  for (int64_t n = n0; n < n1; ++n) job.y[n] = q4_gemv<G, ZP>(job.w, n, a) + (job.bias ? job.bias[n] : 0.0f);
}

// 1 < M < 12: q4_gemv_tile as tiled_rows' Row (qkernels.h), inlined into its row loop rather than
// called per weight row and tile with the sums passed back through memory (in cache, 1 thread:
// M = 8 8-10% faster, M = 2 within 6%).
template <int G, bool ZP>
struct Q4Tile {
  template <int MT>
  struct Row {
    [[gnu::always_inline]] static void run(const WeightView& w, int64_t n, const Q4Acts& a, int64_t m0, float* out) {
      q4_gemv_tile<G, ZP, MT>(w, n, a, m0, out);
    }
  };
};

template <int G, bool ZP>
void q4_rows(const Job& job, const Q4Acts& a, int64_t n0, int64_t n1) {
  // One weight row at a time: the weights then stream strictly in address order. Two or four rows
  // interleaved (sharing the activation loads) were faster in cache but 30-40% slower from
  // DRAM, whose prefetchers lose track of four streams 1 KiB apart within a page.
  if (job.M == 1) q4_gemv_rows<G, ZP>(job, a, n0, n1);
  else tiled_rows<Q4Tile<G, ZP>::template Row>(job, a, n0, n1);
}

template <bool ZP>
void q4_dispatch_group(const Job& job, const Q4Acts& a, int64_t n0, int64_t n1) {
  switch (job.w.group) {
    case 32: q4_rows<32, ZP>(job, a, n0, n1); break;
    case 64: q4_rows<64, ZP>(job, a, n0, n1); break;
    default: q4_rows<128, ZP>(job, a, n0, n1); break;
  }
}

}  // namespace

std::unique_ptr<Rows> prepare_avx512(const Job& job, PrepCache* cache) {
  switch (job.w.dtype) {
    case DType::Q4:
    case DType::Q4Z: {
      if (mlanes_job(job.w.dtype, job.M)) return amx_gemm(job.w.dtype, job.M) ? prepare_q4_amx(job) : prepare_q4_mlanes(job);
      const bool zp = job.w.dtype == DType::Q4Z;
      const auto make = [&] {
        auto a = std::make_shared<Q4Acts>();
        prep_q4(job.x, job.M, job.w.cols, zp, *a);
        if (job.M > 1) prep_q4_tiles(job.M, job.w.cols, *a);
        return std::shared_ptr<const Q4Acts>(std::move(a));
      };
      std::shared_ptr<const Q4Acts> a = cache ? cache->get<Q4Acts>(job, zp ? 1 : 0, make) : make();
      return make_rows([job, zp, a = std::move(a)](int64_t n0, int64_t n1) {
        zp ? q4_dispatch_group<true>(job, *a, n0, n1) : q4_dispatch_group<false>(job, *a, n0, n1);
      });
    }
    case DType::I8: return prepare_i8_avx512(job, cache);
    case DType::F8E4M3: return prepare_f8_avx512(job);
    case DType::MXFP4: return prepare_mx4_avx512(job, cache);
    default: return nullptr;
  }
}

}  // namespace moe::cpu::qk
