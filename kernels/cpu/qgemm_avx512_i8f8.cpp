// AVX-512 (F, BW, VL, VNNI) I8 and F8E4M3 matmul. Compiled with per-file ISA flags
// (kernels/CMakeLists.txt) and only called after CPUID said yes (qmatmul.cpp).
//
// I8: int8 activations through vpdpbusd (64 multiply-adds per instruction). M < 12: w + 128
// against x, one weight row at a time (against up to 4 rows of x when M > 1, weights and x then
// transposed by dwords), four chunks summed before the float step (i8_gemv_rows, I8Tile).
// F8E4M3: codes widened through fp16 (exact), fp32 FMAs against fp32 activations, tiled too.
// In a tile each decoded chunk is reused from registers across the rows of x.
#include <immintrin.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "kernels/cpu/qavx512.h"

namespace moe::cpu::qk {

namespace {

// ---- I8 -----------------------------------------------------------------------------------
// GEMV activations (M < 12), per row of x and quad of 4 chunks (256 columns; K padded to a
// quad with zeros):
//   q [M, nq * 256] int8 in natural order;
//   d [M, nq, 16] f32: lane 4r + c = the scale of the block under 128-bit lane r of chunk c;
//   c [M, nq, 16] i32: lane 4r + c = -128 x the sum of those 16 codes.
// The kernel feeds w + 128 (w xor 0x80, unsigned) and x (signed) to vpdpbusd, so
// sum (w + 128) x + c = sum w x exactly: 1 ALU op per 64 weights where |w| and a sign
// transfer took 3.
struct I8Gemv {
  std::vector<int8_t> q, qt;  // qt: each quad's chunks as transpose_dwords arranges them (M > 1)
  std::vector<float> d;
  std::vector<int32_t> c;
  int64_t nq = 0;
};

void prep_i8_gemv(const float* x, int64_t M, int64_t K, I8Gemv& a) {
  a.nq = (K + 255) / 256;
  const int64_t kq = a.nq * 256;
  a.q.assign(size_t(M * kq), 0);
  a.d.assign(size_t(M * a.nq * 16), 0.0f);
  a.c.assign(size_t(M * a.nq * 16), 0);
  for (int64_t m = 0; m < M; ++m) {
    int8_t* q = &a.q[size_t(m * kq)];
    float* d = &a.d[size_t(m * a.nq * 16)];
    int32_t* cs = &a.c[size_t(m * a.nq * 16)];
    for (int64_t col = 0; col < K; col += 32) {
      float dr;
      __m512i qa, qb;
      quant_block(x + m * K + col, &dr, &qa, &qb);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + col), _mm512_cvtsepi32_epi8(qa));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + col + 16), _mm512_cvtsepi32_epi8(qb));
      const int64_t quad = col / 256, chunk = (col % 256) / 64, r0 = (col % 64) / 16;
      d[quad * 16 + 4 * r0 + chunk] = d[quad * 16 + 4 * (r0 + 1) + chunk] = dr;
    }
    for (int64_t quad = 0; quad < a.nq; ++quad)
      for (int chunk = 0; chunk < 4; ++chunk)
        for (int r = 0; r < 4; ++r) {
          int32_t sum = 0;
          for (int i = 0; i < 16; ++i) sum += q[quad * 256 + chunk * 64 + r * 16 + i];
          cs[quad * 16 + 4 * r + chunk] = -128 * sum;
        }
  }
}

// x for the tile kernel: each quad's four chunks through transpose_dwords (qavx512.h).
void prep_i8_tiles(int64_t M, I8Gemv& a) {
  const int64_t kq = a.nq * 256;
  a.qt.resize(a.q.size());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t qd = 0; qd < a.nq; ++qd) {
      const size_t o = size_t(m * kq + qd * 256);
      __m512i v[4], t[4];
      for (int c = 0; c < 4; ++c) v[c] = _mm512_loadu_si512(&a.q[o + size_t(c * 64)]);
      transpose_dwords(v, t);
      for (int j = 0; j < 4; ++j) _mm512_storeu_si512(&a.qt[o + size_t(j * 64)], t[j]);
    }
}

// Weight row n against MT rows of x from m0: out[i] = y[m0 + i, n] before the row scale. Each
// quad's weights go through transpose_dwords once, as x did in prep_i8_tiles, so each row of x
// takes 4 vpdpbusd whose lanes hold hsum_runs' sums (lane 4r + c = lane r of chunk c, half a
// 32-block), then one conversion and FMA per 16 lanes. That lane order and lanes_sum are the sum
// order of every I8 path, rows in lanes included (qgemm_avx512_i8m.cpp), so y does not depend
// on M.
template <int MT>
[[gnu::always_inline]] inline void i8_gemv_tile(const WeightView& w, int64_t n, const I8Gemv& a, int64_t m0, float* out) {
  const int64_t K = w.cols, full = K / 256, kq = a.nq * 256;
  const __m512i flip = _mm512_set1_epi8(int8_t(0x80));
  const int8_t* wr = static_cast<const int8_t*>(w.data) + n * K;
  __m512 acc[MT];
  for (int i = 0; i < MT; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t qd = 0; qd <= full && qd < a.nq; ++qd, wr += 256) {
    __m512i v[4];
    if (qd < full) {
      for (int c = 0; c < 4; ++c) prefetch(wr + c * 64);
      for (int c = 0; c < 4; ++c) v[c] = _mm512_xor_si512(_mm512_loadu_si512(wr + c * 64), flip);
    } else {  // masked loads in the row's last, partial quad (see i8_gemv_rows)
      const int64_t left = K - qd * 256;
      for (int c = 0; c < 4; ++c) {
        const int64_t cl = std::min<int64_t>(64, std::max<int64_t>(0, left - c * 64));
        v[c] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(cl >= 64 ? ~__mmask64(0) : (__mmask64(1) << cl) - 1, wr + c * 64), flip);
      }
    }
    __m512i t[4];
    transpose_dwords(v, t);
    for (int i = 0; i < MT; ++i) {
      const int8_t* xp = &a.qt[size_t((m0 + i) * kq + qd * 256)];
      __m512i s0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), t[0], _mm512_loadu_si512(xp));
      __m512i s1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), t[2], _mm512_loadu_si512(xp + 128));
      s0 = _mm512_dpbusd_epi32(s0, t[1], _mm512_loadu_si512(xp + 64));
      s1 = _mm512_dpbusd_epi32(s1, t[3], _mm512_loadu_si512(xp + 192));
      const size_t o = size_t(((m0 + i) * a.nq + qd) * 16);
      const __m512i h = _mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_loadu_si512(&a.c[o]));
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(h), _mm512_loadu_ps(&a.d[o]), acc[i]);
    }
  }
  for (int i = 0; i < MT; ++i) out[i] = lanes_sum(acc[i]);
}

// Decode (M = 1): i8_gemv_tile's sums for MT = 1, in the same order, written for the weight
// stream alone (the tile template at MT = 1 ran the in-cache GEMV at 75-90% of this); rows
// [n0, n1), one at a time so the weights stream in address order (see q4_rows).
void i8_gemv_rows(const Job& job, const I8Gemv& a, int64_t n0, int64_t n1) {
  const int64_t K = job.w.cols, full = K / 256;
  const __m512i flip = _mm512_set1_epi8(int8_t(0x80));
  const float* scales = static_cast<const float*>(job.w.scales);
  for (int64_t n = n0; n < n1; ++n) {
    const int8_t* wr = static_cast<const int8_t*>(job.w.data) + n * K;
    const int8_t* xp = a.q.data();
    __m512 acc = _mm512_setzero_ps();
    for (int64_t qd = 0; qd <= full && qd < a.nq; ++qd, wr += 256, xp += 256) {
      __m512i s[4];
      if (qd < full) {
        for (int c = 0; c < 4; ++c) prefetch(wr + c * 64);
        for (int c = 0; c < 4; ++c)
          s[c] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(_mm512_loadu_si512(wr + c * 64), flip),
                                     _mm512_loadu_si512(xp + c * 64));
      } else {
        // The row's last, partial quad: masked loads touch nothing past the row. Bytes left out
        // read as 0 (128 after the flip) and meet zero activations.
        const int64_t left = K - qd * 256;
        for (int c = 0; c < 4; ++c) {
          const int64_t cl = std::min<int64_t>(64, std::max<int64_t>(0, left - c * 64));
          const __m512i v = _mm512_maskz_loadu_epi8(cl >= 64 ? ~__mmask64(0) : (__mmask64(1) << cl) - 1, wr + c * 64);
          s[c] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(v, flip), _mm512_loadu_si512(xp + c * 64));
        }
      }
      const __m512i t = _mm512_add_epi32(hsum_runs(s[0], s[1], s[2], s[3]), _mm512_loadu_si512(&a.c[size_t(qd * 16)]));
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_loadu_ps(&a.d[size_t(qd * 16)]), acc);
    }
    float t = scales[n] * lanes_sum(acc);
    asm("" : "+x"(t));  // rounded before the bias, as in I8Tile
    job.y[n] = t + (job.bias ? job.bias[n] : 0.0f);
  }
}

// 1 < M < 12: i8_gemv_tile as tiled_rows' Row (qkernels.h), with the row scale.
template <int MT>
struct I8Tile {
  static void run(const WeightView& w, int64_t n, const I8Gemv& a, int64_t m0, float* out) {
    i8_gemv_tile<MT>(w, n, a, m0, out);
    const float s = static_cast<const float*>(w.scales)[n];
    for (int i = 0; i < MT; ++i) {
      // Rounded before tiled_rows adds the bias, as the rows-in-lanes kernel does: the empty asm
      // keeps the compiler from contracting the two into one FMA.
      float t = s * out[i];
      asm("" : "+x"(t));
      out[i] = t;
    }
  }
};

// ---- F8E4M3 -------------------------------------------------------------------------------
// e4m3 -> fp16 is a bit move: sign to bit 15, exponent+mantissa to bits 13..7. The fp16 value
// is the e4m3 value times 2^-8 (biases 15 vs 7), subnormals included; vcvtph2ps widens it
// exactly. Sign-extending first puts the sign at bit 15 after the shift; bit 14 is cleared.
inline void f8_decode32(const uint8_t* p, __m512* f0, __m512* f1) {
  __m512i h = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  h = _mm512_and_si512(_mm512_slli_epi16(h, 7), _mm512_set1_epi16(int16_t(0xbfff)));
  *f0 = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
  *f1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
}

template <int MT>
void f8_row(const WeightView& w, int64_t n, const float* x, int64_t m0, float out[MT]) {
  const int64_t K = w.cols, bw = w.group == 0 ? K : 128, nb = (K + 127) / 128;
  const uint8_t* wr = static_cast<const uint8_t*>(w.data) + n * K;
  const float* sc = static_cast<const float*>(w.scales);
  __m512 tot[MT];
  for (int i = 0; i < MT; ++i) tot[i] = _mm512_setzero_ps();
  for (int64_t b0 = 0; b0 < K; b0 += bw) {
    __m512 a0[MT], a1[MT];
    for (int i = 0; i < MT; ++i) a0[i] = a1[i] = _mm512_setzero_ps();
    for (int64_t c = b0; c < std::min(K, b0 + bw); c += 32) {
      __m512 f0, f1;
      prefetch(wr + c);
      f8_decode32(wr + c, &f0, &f1);
      for (int i = 0; i < MT; ++i) {
        const float* xr = x + (m0 + i) * K + c;
        a0[i] = _mm512_fmadd_ps(f0, _mm512_loadu_ps(xr), a0[i]);
        a1[i] = _mm512_fmadd_ps(f1, _mm512_loadu_ps(xr + 16), a1[i]);
      }
    }
    // 256 undoes the 2^-8 of the fp16 detour (exact: a power of two).
    const float s = 256.0f * (w.group == 0 ? sc[n] : sc[(n / 128) * nb + b0 / 128]);
    for (int i = 0; i < MT; ++i) tot[i] = _mm512_fmadd_ps(_mm512_add_ps(a0[i], a1[i]), _mm512_set1_ps(s), tot[i]);
  }
  for (int i = 0; i < MT; ++i) out[i] = _mm512_reduce_add_ps(tot[i]);
}

// Adapters for tiled_rows (qkernels.h).
template <int MT>
struct F8Row {
  static void run(const WeightView& w, int64_t n, const float* x, int64_t m0, float* out) { f8_row<MT>(w, n, x, m0, out); }
};

}  // namespace

std::unique_ptr<Rows> prepare_i8_avx512(const Job& job, PrepCache* cache) {
  if (mlanes_job(job.w.dtype, job.M)) return prepare_i8_mlanes(job);
  const auto make = [&] {
    auto g = std::make_shared<I8Gemv>();
    prep_i8_gemv(job.x, job.M, job.w.cols, *g);
    if (job.M > 1) prep_i8_tiles(job.M, *g);
    return std::shared_ptr<const I8Gemv>(std::move(g));
  };
  std::shared_ptr<const I8Gemv> g = cache ? cache->get<I8Gemv>(job, 2, make) : make();
  return make_rows([job, g = std::move(g)](int64_t n0, int64_t n1) {
    job.M == 1 ? i8_gemv_rows(job, *g, n0, n1) : tiled_rows<I8Tile>(job, *g, n0, n1);
  });
}

std::unique_ptr<Rows> prepare_f8_avx512(const Job& job) {
  return make_rows([job](int64_t n0, int64_t n1) { tiled_rows<F8Row>(job, job.x, n0, n1); });
}

}  // namespace moe::cpu::qk
