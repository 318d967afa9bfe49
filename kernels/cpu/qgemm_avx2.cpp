// AVX2 (+FMA, F16C) quantized matmul, for CPUs without AVX-512 VNNI. Compiled with per-file
// ISA flags (kernels/CMakeLists.txt) and only called after CPUID said yes (qmatmul.cpp).
//
// Q4/Q4Z and I8 use int8 activations and vpmaddubsw (u8 x s8 pairs -> s16; no saturation here:
// |q| <= 15 or 127 and |x| <= 127 keep pair sums below 32767) + vpmaddwd (-> s32); Q4 takes
// quads of eight 32-column runs per step (their lanes summed per run before the float work), I8
// one run. F8E4M3 widens through fp16 and uses fp32 FMAs; MXFP4 decodes
// through a vpshufb table and uses fp32 FMAs.
// Rows of x are tiled by up to 4 so each unpacked weight block is reused from registers; each
// tile meets a chunk of weight rows held in L2 before the next tile (weight_chunk_rows, qkernels.h).
#include <immintrin.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "kernels/cpu/qavx2.h"

namespace moe::cpu::qk {

namespace {

// Software prefetch distance along a weight stream (see qavx512.h); prefetches never fault. Into
// L1 here: L2 (as the AVX-512 kernels do) made this I8 GEMV 15-35% slower on a Zen 4.
constexpr int kPrefetchBytes = 2048;
inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

using avx2::Acts;

// Q4/Q4Z activations, per row of x in quads of four pairs of 32-column runs (256 columns; kp = K
// rounded up to 256, the padding zero):
//   q [M, kp] int8: per pair of runs (r0, r1), bytes 0..15 = r0 columns 0..15, 16..31 = r1
//     columns 0..15, 32..47 = r0 columns 16..31, 48..63 = r1 columns 16..31: the order of the low
//     and high nibbles of the pair's 32 weight bytes; then each quad's four pairs transposed by
//     dwords (transpose_dwords: their low halves together, their high halves together).
//   d [M, kp/256, 8] f32: the runs' scales in the kernel's lane order (run_lane);
//   b [M, kp/256, 8] i32: per run the sum of its codes, stored as -8 * sum for Q4 (added to the
//     run's sum: sum (q - 8) x = sum q x - 8 sum x) and as the sum for Q4Z.
struct Q4Acts {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> b;
  int64_t kp = 0, nq = 0;
};

using avx2::run_lane;

// Four vectors transposed by dwords within each 128-bit half: v[j] dword 4h + k becomes v[k]'s
// dword 4h + j. With a quad's weight pairs and x both so arranged, int32 lane (h, k) of every
// product meets only run 2k + h, so adding the products lane by lane gives each run's sum in its
// run_lane (integer adds: the same bits in any order). 8 shuffles per weight quad instead of 9
// ops of horizontal sums and 3 more vpmaddwd per quad and row of x.
inline void transpose_dwords(__m256i* v) {
  const __m256i a = _mm256_unpacklo_epi32(v[0], v[1]), b = _mm256_unpackhi_epi32(v[0], v[1]);
  const __m256i c = _mm256_unpacklo_epi32(v[2], v[3]), d = _mm256_unpackhi_epi32(v[2], v[3]);
  v[0] = _mm256_unpacklo_epi64(a, c), v[1] = _mm256_unpackhi_epi64(a, c);
  v[2] = _mm256_unpacklo_epi64(b, d), v[3] = _mm256_unpackhi_epi64(b, d);
}

void prep_q4(const Acts& nat, int64_t M, int64_t K, bool zp, Q4Acts& a) {
  a.kp = (K + 255) / 256 * 256;
  a.nq = a.kp / 256;
  const int64_t nb = K / 32;
  a.q.assign(size_t(M * a.kp), 0);
  a.d.assign(size_t(M * a.nq * 8), 0.0f);
  a.b.assign(size_t(M * a.nq * 8), 0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t blk = 0; blk < nb; ++blk) {
      const int64_t pr = blk / 2, h = blk % 2;  // pair, run within the pair
      const int8_t* src = &nat.q[size_t(m * K + blk * 32)];
      int8_t* dst = &a.q[size_t(m * a.kp + pr * 64 + h * 16)];
      std::copy_n(src, 16, dst);
      std::copy_n(src + 16, 16, dst + 32);
      const size_t o = size_t((m * a.nq + blk / 8) * 8 + run_lane(int(blk % 8)));
      a.d[o] = nat.d[size_t(m * nb + blk)];
      a.b[o] = avx2::code_sum_term(src, zp);
    }
  // Each quad's four low-nibble halves and four high-nibble halves as transpose_dwords arranges
  // the weights (q4_row_g).
  for (int64_t m = 0; m < M; ++m)
    for (int64_t qd = 0; qd < a.nq; ++qd)
      for (int half = 0; half < 2; ++half) {
        int8_t* base = &a.q[size_t(m * a.kp + qd * 256 + half * 32)];
        __m256i v[4];
        for (int p = 0; p < 4; ++p) v[p] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + 64 * p));
        transpose_dwords(v);
        for (int p = 0; p < 4; ++p) _mm256_storeu_si256(reinterpret_cast<__m256i*>(base + 64 * p), v[p]);
      }
}

// A quad's 8 group values (fp16 scales, or u8 zero points already widened) in run_lane order:
// run r of the quad is in group (32 r) / G of the quad's 8 / 4 / 2 groups.
template <int G>
inline __m256 quad_lanes(__m256 v) {
  const __m256i idx = G == 32   ? _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)
                      : G == 64 ? _mm256_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3)
                                : _mm256_setr_epi32(0, 0, 1, 1, 0, 0, 1, 1);
  return _mm256_permutevar8x32_ps(v, idx);
}

// The quad's weight scales (ng groups of it in the row: fewer in a last, partial quad; the
// missing ones read as 0, whose runs sum to 0 anyway).
template <int G>
inline __m256 quad_scales(const uint16_t* sp, int ng) {
  constexpr int full = 256 / G;
  __m128i h;
  if (ng >= full) {
    if constexpr (G == 32) h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(sp));
    else if constexpr (G == 64) h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sp));
    else h = _mm_cvtsi32_si128(int32_t(uint32_t(sp[0]) | uint32_t(sp[1]) << 16));
  } else {
    alignas(16) uint16_t t[8] = {};
    std::copy_n(sp, ng, t);
    h = _mm_load_si128(reinterpret_cast<const __m128i*>(t));
  }
  return quad_lanes<G>(_mm256_cvtph_ps(h));
}

template <int G>
inline __m256 quad_zeros(const uint8_t* zp, int ng) {
  alignas(16) uint8_t t[16] = {};
  std::copy_n(zp, std::min(ng, 256 / G), t);
  return quad_lanes<G>(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(t)))));
}

// Per quad: the four pairs' 32 weight bytes transposed (transpose_dwords) and unpacked once; for
// each row of x, eight vpmaddubsw (low and high nibbles) summed in int16 (|sum| <= 8 * 2 * 15 *
// 128 = 30720 fits) and one vpmaddwd give each run's sum in its lane (run_lane), then one
// conversion and one FMA for the quad's 8 runs. The float sums run in this order for every
// tile size, so a row's result does not depend on M.
template <int G, bool ZP, int MT>
void q4_row_g(const WeightView& w, int64_t n, const Q4Acts& a, int64_t m0, float* out) {
  const int64_t K = w.cols, ng = K / G, nb = K / 32, full_quads = nb / 8;
  const uint8_t* wr = static_cast<const uint8_t*>(w.data) + n * K / 2;
  const uint16_t* sr = static_cast<const uint16_t*>(w.scales) + n * ng;
  const uint8_t* zr = ZP ? w.zeros + n * ng : nullptr;
  const __m256i low4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
  __m256 acc[MT];
  for (int i = 0; i < MT; ++i) acc[i] = _mm256_setzero_ps();
  // One quad; Tail: the row's last, partial one (runs < 8: missing pairs read as 0, unread).
  auto step = [&](int64_t qd, auto tail) {
    constexpr bool Tail = decltype(tail)::value;
    const int64_t r0 = qd * 8;  // the quad's first run
    const int runs = Tail ? int(nb - r0) : 8;
    const uint8_t* wq = wr + r0 * 16;
    prefetch(wq);
    prefetch(wq + 64);
    __m256i v[4], lo[4], hi[4];
    for (int p = 0; p < 4; ++p) {
      v[p] = !Tail || 2 * p + 1 < runs ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32 * p))
             : 2 * p < runs            ? _mm256_set_m128i(_mm_setzero_si128(), _mm_loadu_si128(reinterpret_cast<const __m128i*>(wq + 32 * p)))
                                       : _mm256_setzero_si256();
    }
    transpose_dwords(v);
    for (int p = 0; p < 4; ++p) lo[p] = _mm256_and_si256(v[p], low4), hi[p] = _mm256_and_si256(_mm256_srli_epi16(v[p], 4), low4);
    const int gq = Tail ? int((runs * 32 + G - 1) / G) : 256 / G;  // the quad's groups
    const __m256 sw = quad_scales<G>(sr + r0 * 32 / G, gq);
    const __m256 zw = ZP ? quad_zeros<G>(zr + r0 * 32 / G, gq) : _mm256_setzero_ps();
    for (int i = 0; i < MT; ++i) {
      const int64_t o = ((m0 + i) * a.nq + qd) * 8;
      const int8_t* xq = &a.q[size_t((m0 + i) * a.kp + qd * 256)];
      const auto dot = [&](int p) {
        return _mm256_add_epi16(_mm256_maddubs_epi16(lo[p], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 64 * p))),
                                _mm256_maddubs_epi16(hi[p], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 64 * p + 32))));
      };
      const __m256i t = _mm256_add_epi16(_mm256_add_epi16(dot(0), dot(1)), _mm256_add_epi16(dot(2), dot(3)));
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&a.b[size_t(o)]));
      __m256i si = _mm256_madd_epi16(t, ones);
      if constexpr (!ZP) si = _mm256_add_epi32(si, bs);
      __m256 f = _mm256_cvtepi32_ps(si);
      if constexpr (ZP) f = _mm256_fnmadd_ps(zw, _mm256_cvtepi32_ps(bs), f);
      acc[i] = _mm256_fmadd_ps(f, _mm256_mul_ps(sw, _mm256_loadu_ps(&a.d[size_t(o)])), acc[i]);
    }
  };
  for (int64_t qd = 0; qd < full_quads; ++qd) step(qd, std::false_type{});
  if (full_quads < a.nq) step(full_quads, std::true_type{});
  for (int i = 0; i < MT; ++i) out[i] = hsum(acc[i]);
}

template <int MT>
void q4_row(const WeightView& w, int64_t n, const Q4Acts& a, int64_t m0, float* out) {
  const bool zp = w.dtype == DType::Q4Z;
  switch (w.group) {
    case 32: return zp ? q4_row_g<32, true, MT>(w, n, a, m0, out) : q4_row_g<32, false, MT>(w, n, a, m0, out);
    case 64: return zp ? q4_row_g<64, true, MT>(w, n, a, m0, out) : q4_row_g<64, false, MT>(w, n, a, m0, out);
    default: return zp ? q4_row_g<128, true, MT>(w, n, a, m0, out) : q4_row_g<128, false, MT>(w, n, a, m0, out);
  }
}

template <int MT>
void i8_row(const WeightView& w, int64_t n, const Acts& a, int64_t m0, float* out) {
  const int64_t K = w.cols, nb = K / 32;
  const int8_t* wr = static_cast<const int8_t*>(w.data) + n * K;
  const __m256i ones = _mm256_set1_epi16(1);
  // Row pointers once, not m * K + b * 32 per block and row: the index arithmetic had spilled
  // general registers to the stack inside the loop.
  const int8_t* xr[MT];
  const float* dr[MT];
  __m256 acc[MT];
  for (int i = 0; i < MT; ++i) {
    xr[i] = &a.q[size_t((m0 + i) * K)];
    dr[i] = &a.d[size_t((m0 + i) * nb)];
    acc[i] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    if (b % 2 == 0) prefetch(wr + b * 32);
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + b * 32));
    const __m256i aw = _mm256_abs_epi8(v);  // maddubs wants unsigned x signed: move w's sign onto x
    for (int i = 0; i < MT; ++i) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr[i] + b * 32));
      const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, v)), ones);
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(dr[i] + b), acc[i]);
    }
  }
  const float s = static_cast<const float*>(w.scales)[n];
  for (int i = 0; i < MT; ++i) {
    // Rounded before the caller adds the bias, in every tile size: the empty asm keeps the
    // compiler from contracting the two into an FMA in some instantiations and not others.
    float t = s * hsum(acc[i]);
    asm("" : "+x"(t));
    out[i] = t;
  }
}

// e4m3 -> fp16 bit move (value * 2^-8, exact); see qgemm_avx512.cpp.
template <int MT>
void f8_row(const WeightView& w, int64_t n, const float* x, int64_t m0, float* out) {
  const int64_t K = w.cols, bw = w.group == 0 ? K : 128, nb = (K + 127) / 128;
  const uint8_t* wr = static_cast<const uint8_t*>(w.data) + n * K;
  const float* sc = static_cast<const float*>(w.scales);
  const __m256i keep = _mm256_set1_epi16(int16_t(0xbfff));
  __m256 tot[MT];
  for (int i = 0; i < MT; ++i) tot[i] = _mm256_setzero_ps();
  for (int64_t b0 = 0; b0 < K; b0 += bw) {
    __m256 a0[MT], a1[MT];
    for (int i = 0; i < MT; ++i) a0[i] = a1[i] = _mm256_setzero_ps();
    for (int64_t c = b0; c < std::min(K, b0 + bw); c += 16) {
      if (c % 64 == 0) prefetch(wr + c);
      __m256i h = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + c)));
      h = _mm256_and_si256(_mm256_slli_epi16(h, 7), keep);
      const __m256 f0 = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
      const __m256 f1 = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
      for (int i = 0; i < MT; ++i) {
        const float* xr = x + (m0 + i) * K + c;
        a0[i] = _mm256_fmadd_ps(f0, _mm256_loadu_ps(xr), a0[i]);
        a1[i] = _mm256_fmadd_ps(f1, _mm256_loadu_ps(xr + 8), a1[i]);
      }
    }
    const float s = 256.0f * (w.group == 0 ? sc[n] : sc[(n / 128) * nb + b0 / 128]);
    for (int i = 0; i < MT; ++i) tot[i] = _mm256_fmadd_ps(_mm256_add_ps(a0[i], a1[i]), _mm256_set1_ps(s), tot[i]);
  }
  for (int i = 0; i < MT; ++i) out[i] = hsum(tot[i]);
}

// MXFP4: vpshufb looks each nibble up in a table of 2 x the e2m1 values (exact int8s), the int8s
// widen to fp32 (exact), and the block's power-of-two scale times 1/2 multiplies the block's sum.
template <int MT>
void mx4_row(const WeightView& w, int64_t n, const float* x, int64_t m0, float* out) {
  const int64_t K = w.cols;
  const uint8_t* wr = static_cast<const uint8_t*>(w.data) + n * K / 2;
  const uint8_t* sc = static_cast<const uint8_t*>(w.scales) + n * (K / 32);
  const __m128i lut = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
  const __m128i low = _mm_set1_epi8(0x0f);
  __m256 tot[MT];
  for (int i = 0; i < MT; ++i) tot[i] = _mm256_setzero_ps();
  for (int64_t c = 0; c < K; c += 32) {
    if (c % 128 == 0) prefetch(wr + c / 2);
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + c / 2));
    const __m128i lo = _mm_and_si128(b, low), hi = _mm_and_si128(_mm_srli_epi16(b, 4), low);
    const __m128i v0 = _mm_shuffle_epi8(lut, _mm_unpacklo_epi8(lo, hi));  // columns 0..15, x2
    const __m128i v1 = _mm_shuffle_epi8(lut, _mm_unpackhi_epi8(lo, hi));  // columns 16..31
    const __m256 f[4] = {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v0)),
                         _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v0, 8))),
                         _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v1)),
                         _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v1, 8)))};
    const __m256 s = _mm256_set1_ps(0.5f * e8m0_to_f32(sc[c / 32]));
    for (int i = 0; i < MT; ++i) {
      const float* xr = x + (m0 + i) * K + c;
      __m256 blk = _mm256_mul_ps(f[0], _mm256_loadu_ps(xr));
      blk = _mm256_fmadd_ps(f[1], _mm256_loadu_ps(xr + 8), blk);
      blk = _mm256_fmadd_ps(f[2], _mm256_loadu_ps(xr + 16), blk);
      blk = _mm256_fmadd_ps(f[3], _mm256_loadu_ps(xr + 24), blk);
      tot[i] = _mm256_fmadd_ps(blk, s, tot[i]);
    }
  }
  for (int i = 0; i < MT; ++i) out[i] = hsum(tot[i]);
}

template <int MT>
struct Q4Row {
  static void run(const WeightView& w, int64_t n, const Q4Acts& a, int64_t m0, float* out) { q4_row<MT>(w, n, a, m0, out); }
};
template <int MT>
struct I8Row {
  static void run(const WeightView& w, int64_t n, const Acts& a, int64_t m0, float* out) { i8_row<MT>(w, n, a, m0, out); }
};
template <int MT>
struct F8Row {
  static void run(const WeightView& w, int64_t n, const float* x, int64_t m0, float* out) { f8_row<MT>(w, n, x, m0, out); }
};
template <int MT>
struct Mx4Row {
  static void run(const WeightView& w, int64_t n, const float* x, int64_t m0, float* out) { mx4_row<MT>(w, n, x, m0, out); }
};

}  // namespace

void avx2::prep(const float* x, int64_t M, int64_t K, Acts& a) {
  a.q.resize(size_t(M * K));
  a.d.resize(size_t(M * K / 32));
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < M * K / 32; ++i) {
    const float* xb = x + i * 32;
    __m256 v[4], mx = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) v[j] = _mm256_loadu_ps(xb + 8 * j), mx = _mm256_max_ps(mx, _mm256_and_ps(v[j], abs_mask));
    const __m256 inv = _mm256_set1_ps(act_inv_scale(hmax(mx), &a.d[size_t(i)]));
    __m256i q[4];
    for (int j = 0; j < 4; ++j) q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], inv));  // nearest-even
    // Packs interleave 128-bit lanes; the permute restores column order.
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    const __m256i o = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(&a.q[size_t(i * 32)]), o);
  }
}

std::unique_ptr<Rows> prepare_avx2(const Job& job) {
  const WeightView& w = job.w;
  const int64_t K = w.cols;
  const int64_t chunk = weight_chunk_rows(w.bytes() / std::max<int64_t>(w.rows, 1));
  if (w.dtype == DType::MXFP4) return make_rows([job, chunk](int64_t n0, int64_t n1) { tiled_rows<Mx4Row>(job, job.x, n0, n1, chunk); });
  if (w.dtype == DType::F8E4M3) return make_rows([job, chunk](int64_t n0, int64_t n1) { tiled_rows<F8Row>(job, job.x, n0, n1, chunk); });
  Acts a;
  avx2::prep(job.x, job.M, K, a);
  if (w.dtype != DType::I8 && job.M >= avx2::kLanesMinRows) return avx2::q4_lanes_rows(job, a);
  if (w.dtype == DType::I8)
    return make_rows([job, chunk, a = std::move(a)](int64_t n0, int64_t n1) { tiled_rows<I8Row>(job, a, n0, n1, chunk); });
  Q4Acts qa;
  prep_q4(a, job.M, K, w.dtype == DType::Q4Z, qa);
  return make_rows([job, chunk, qa = std::move(qa)](int64_t n0, int64_t n1) { tiled_rows<Q4Row>(job, qa, n0, n1, chunk); });
}

}  // namespace moe::cpu::qk
