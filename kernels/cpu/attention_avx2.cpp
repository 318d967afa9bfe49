// AVX2 (+FMA, F16C) attention of one query token for the query heads that share one kv head
// (attention.h's attend_group), for CPUs without AVX-512. Compiled with per-file ISA flags
// (kernels/CMakeLists.txt); attention.cpp only calls it after CPUID said yes.
//
// The scalar path pays a function call and a reduction per key, a libm exp per score, and reads
// each key and value row once per query head. Here 8 keys are scored together (8 accumulators,
// one reduction for the 8), exp is a vector polynomial, and bf16 / f16 rows are widened in
// registers as they are read.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/attention.h"

namespace moe::cpu::detail {

namespace {

// e^x for x <= 0 (scores minus their maximum): 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2], p
// the degree-7 Taylor polynomial (as the AVX-512 kernel); 2^n built in the exponent bits.
// Clamped at -87: e^-87 is already below the smallest normal float.
inline __m256 exp_le0(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);  // ln 2, high bits: n * hi is exact
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606820309417e-06f), r);     // and the rest
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  for (const float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f})
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  // n >= -126 here (x >= -87), so 2^n is a normal float: its exponent field is n + 127.
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Lane i of the result = the sum of a[i]'s 8 lanes.
inline __m256 sum8(const __m256* a) {
  const __m256 b0 = _mm256_hadd_ps(a[0], a[1]), b1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 b2 = _mm256_hadd_ps(a[4], a[5]), b3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 c0 = _mm256_hadd_ps(b0, b1), c1 = _mm256_hadd_ps(b2, b3);  // [a0..a3 lo | a0..a3 hi], ...
  return _mm256_add_ps(_mm256_permute2f128_ps(c0, c1, 0x20), _mm256_permute2f128_ps(c0, c1, 0x31));
}

// Softmax numerators of one head's scores s[0, n) in place; returns their sum (with the sink's
// share when there is one).
inline float exp_row(float* s, int64_t n, const float* sink) {
  float mx = sink ? *sink : -INFINITY;
  __m256 mv = _mm256_set1_ps(mx);
  int64_t t = 0;
  for (; t + 8 <= n; t += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + t));
  alignas(32) float m8[8];
  _mm256_store_ps(m8, mv);
  for (float m : m8) mx = std::max(mx, m);
  for (; t < n; ++t) mx = std::max(mx, s[t]);
  const __m256 m = _mm256_set1_ps(mx);
  __m256 sum = _mm256_setzero_ps();
  for (t = 0; t + 8 <= n; t += 8) {
    const __m256 e = exp_le0(_mm256_sub_ps(_mm256_loadu_ps(s + t), m));
    _mm256_storeu_ps(s + t, e);
    sum = _mm256_add_ps(sum, e);
  }
  float total = hsum(sum);
  if (t < n) {  // the last keys through a padded copy
    alignas(32) float tail[8] = {};
    std::copy(s + t, s + n, tail);
    _mm256_store_ps(tail, exp_le0(_mm256_sub_ps(_mm256_load_ps(tail), m)));
    for (int64_t i = 0; i < n - t; ++i) total += (s[t + i] = tail[i]);
  }
  if (sink) {
    alignas(32) float e[8];
    _mm256_store_ps(e, exp_le0(_mm256_set1_ps(*sink - mx)));
    total += e[0];
  }
  return total;
}

// 8 cached elements widened to fp32 (exact).
struct LoadF32 {
  using E = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
};
struct LoadF16 {
  using E = uint16_t;
  static __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
};
struct LoadBF16 {
  using E = uint16_t;
  static __m256 load(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
};

template <class L>
void attend_group_impl(const float* q, int n_q, const KvRows& k, const KvRows& v, int64_t first, int64_t pos,
                       int head_dim, float scale, const float* sinks, float* out, float* scratch) {
  using E = typename L::E;
  const int64_t n = pos - first + 1, t8 = n / 8 * 8;
  const int nc = head_dim / 8;  // 8-float chunks per head
  const __m256 sv = _mm256_set1_ps(scale);
  // Scores: 8 keys at a time for every head (the rows stay in L1 across the heads), then the
  // keys left over one at a time.
  for (int64_t t0 = 0; t0 < t8; t0 += 8) {
    const E* rows[8];
    for (int t = 0; t < 8; ++t) rows[t] = k.row<E>(first + t0 + t);
    for (int g = 0; g < n_q; ++g) {
      const float* qg = q + g * head_dim;
      __m256 acc[8];
      for (int t = 0; t < 8; ++t) acc[t] = _mm256_setzero_ps();
      for (int c = 0; c < nc; ++c) {
        const __m256 qc = _mm256_loadu_ps(qg + 8 * c);
        for (int t = 0; t < 8; ++t) acc[t] = _mm256_fmadd_ps(qc, L::load(rows[t] + 8 * c), acc[t]);
      }
      _mm256_storeu_ps(scratch + g * n + t0, _mm256_mul_ps(sum8(acc), sv));
    }
  }
  for (int64_t t = t8; t < n; ++t) {
    const E* row = k.row<E>(first + t);
    for (int g = 0; g < n_q; ++g) {
      __m256 acc = _mm256_setzero_ps();
      for (int c = 0; c < nc; ++c) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * head_dim + 8 * c), L::load(row + 8 * c), acc);
      scratch[g * n + t] = hsum(acc) * scale;
    }
  }
  // Values: per head, 64 output columns in registers while the value rows stream past.
  for (int g = 0; g < n_q; ++g) {
    float* p = scratch + g * n;
    const float inv = 1.0f / exp_row(p, n, sinks ? sinks + g : nullptr);
    for (int c0 = 0; c0 < nc; c0 += 8) {
      const int cn = std::min(8, nc - c0);
      __m256 acc[8];
      for (int c = 0; c < 8; ++c) acc[c] = _mm256_setzero_ps();
      for (int64_t t = 0; t < n; ++t) {
        const E* vt = v.row<E>(first + t) + 8 * c0;
        const __m256 w = _mm256_set1_ps(p[t]);
        for (int c = 0; c < cn; ++c) acc[c] = _mm256_fmadd_ps(w, L::load(vt + 8 * c), acc[c]);
      }
      for (int c = 0; c < cn; ++c)
        _mm256_storeu_ps(out + g * head_dim + 8 * (c0 + c), _mm256_mul_ps(acc[c], _mm256_set1_ps(inv)));
    }
  }
}

}  // namespace

void attend_group_avx2(const float* q, int n_q, const KvRows& k, const KvRows& v, DType t, int64_t first,
                       int64_t pos, int head_dim, float scale, const float* sinks, float* out, float* scratch) {
  if (t == DType::F32) attend_group_impl<LoadF32>(q, n_q, k, v, first, pos, head_dim, scale, sinks, out, scratch);
  else if (t == DType::BF16) attend_group_impl<LoadBF16>(q, n_q, k, v, first, pos, head_dim, scale, sinks, out, scratch);
  else attend_group_impl<LoadF16>(q, n_q, k, v, first, pos, head_dim, scale, sinks, out, scratch);
}

}  // namespace moe::cpu::detail
