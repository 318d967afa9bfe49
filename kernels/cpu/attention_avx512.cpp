// AVX-512 attention of one query token for the query heads that share one kv head, and of up
// to 4 tokens for a kv head that serves one query head (see attention.h). Compiled with
// per-file ISA flags (kernels/CMakeLists.txt); attention.cpp only calls it after CPUID said yes.
//
// The scalar path spends most of its time outside arithmetic: a function call and a reduction
// per key, a libm exp per score, and an output row read and written back per value. Here each
// key and value row is loaded once for every head of the group, exp is a vector polynomial, and
// the output rows stay in registers while the values stream past.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/attention.h"

namespace moe::cpu::detail {

namespace {

// e^x for x <= 0 (scores minus their maximum): 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2],
// p the degree-7 Taylor polynomial (truncation < 6e-9 relative, below fp32's half ulp).
// Clamped at -87: e^-87 is already below the smallest normal float.
inline __m512 exp_le0(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln 2, high bits: n * hi is exact
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606820309417e-06f), r);     // and the rest
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  for (const float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f})
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, n);
}

// Softmax numerators of one head's scores s[0, n) in place; returns their sum (with the sink's
// share when there is one).
inline float exp_row(float* s, int64_t n, const float* sink) {
  __m512 mv = _mm512_set1_ps(sink ? *sink : -INFINITY);
  int64_t t = 0;
  for (; t + 16 <= n; t += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(s + t));
  float mx = _mm512_reduce_max_ps(mv);
  for (; t < n; ++t) mx = std::max(mx, s[t]);
  const __m512 m = _mm512_set1_ps(mx);
  __m512 sum = _mm512_setzero_ps();
  for (t = 0; t < n; t += 16) {
    const __mmask16 k = n - t >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - t)) - 1);
    const __m512 e = exp_le0(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + t), m));
    _mm512_mask_storeu_ps(s + t, k, e);
    sum = _mm512_mask_add_ps(sum, k, sum, e);
  }
  float total = _mm512_reduce_add_ps(sum);
  if (sink) total += _mm512_cvtss_f32(exp_le0(_mm512_set1_ps(*sink - mx)));
  return total;
}

// Lane i of the result = the sum of a[i]'s 16 lanes: 45 shuffles and adds for 16 sums instead of
// a full reduction (~10 instructions) each.
inline __m512 sum16(const __m512* a) {
  __m512 b[8], c[4];
  for (int i = 0; i < 8; ++i)  // per 128-bit block: pairs of (a[2i], a[2i+1]) half-summed
    b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {  // block j, lane r: block j's sum of a[4i + r]
    const __m512d x = _mm512_castps_pd(b[2 * i]), y = _mm512_castps_pd(b[2 * i + 1]);
    c[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  // Sum the four blocks of each c[i] into block i of the result.
  const __m512 e0 = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 e1 = _mm512_add_ps(_mm512_shuffle_f32x4(c[2], c[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                  _mm512_shuffle_f32x4(c[2], c[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(e0, e1, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(e0, e1, _MM_SHUFFLE(3, 1, 3, 1)));
}

// 16 cached elements widened to fp32: the cache's rows are read in their stored type, so a
// bf16 / f16 cache streams half the bytes of an fp32 one (widening is exact).
struct LoadF32 {
  using E = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
};
struct LoadF16 {
  using E = uint16_t;
  static __m512 load(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
};
struct LoadBF16 {
  using E = uint16_t;
  static __m512 load(const uint16_t* p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
};

// A kv head's part of a cached row is a few cache lines, one row per position, rows a whole
// cache row apart (kv heads x head_dim elements): the hardware prefetcher, which stops at page
// boundaries, barely follows that, so the kernel asks for rows this far ahead itself.
constexpr int64_t kAhead = 16;
template <class E>
inline void prefetch_row(const E* p, int head_dim) {
  const char* c = reinterpret_cast<const char*>(p);
  const int bytes = head_dim * int(sizeof(E));
  for (int o = 0; o < bytes; o += 64) _mm_prefetch(c + o, _MM_HINT_T0);
  _mm_prefetch(c + bytes - 1, _MM_HINT_T0);  // a row that does not start on a line ends in one more
}

// Scores of query rows [g0, g0 + 4) (q_stride floats apart: a group's heads, or attend_rows's
// tokens) x keys [t0, t0 + 4): 16 dot products sharing their loads.
template <class L>
inline void scores4x4(const float* q, int64_t q_stride, const KvRows& k, int64_t first, int64_t t0, int g0,
                      int head_dim, float scale, int64_t n, float* scratch) {
  using E = typename L::E;
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
  const E* kt[4];
  for (int t = 0; t < 4; ++t) kt[t] = k.row<E>(first + t0 + t);
  if (g0 == 0 && t0 + kAhead + 4 <= n)
    for (int t = 0; t < 4; ++t) prefetch_row(k.row<E>(first + t0 + kAhead + t), head_dim);
  for (int c = 0; c < head_dim / 16; ++c) {
    __m512 kc[4];
    for (int t = 0; t < 4; ++t) kc[t] = L::load(kt[t] + 16 * c);
    for (int g = 0; g < 4; ++g) {
      const __m512 qc = _mm512_loadu_ps(q + (g0 + g) * q_stride + 16 * c);
      for (int t = 0; t < 4; ++t) acc[4 * g + t] = _mm512_fmadd_ps(qc, kc[t], acc[4 * g + t]);
    }
  }
  const __m512 s = _mm512_mul_ps(sum16(acc), _mm512_set1_ps(scale));  // lane 4g + t
  for (int g = 0; g < 4; ++g) _mm_storeu_ps(scratch + (g0 + g) * n + t0, _mm512_extractf32x4_ps(s, g));
}

// acc[t] += the dot product of CN chunks of the query with those of key t, for 16 keys: key by
// key (at(t): key t's first chunk), the query's chunks in registers; the 16 sums are
// independent chains. CN is a compile-time count so that acc stays in registers.
template <class L, int CN, class At>
[[gnu::always_inline]] inline void dot16(const float* qg, const At& at, __m512 (&acc)[16]) {
  __m512 qc[CN];
  for (int c = 0; c < CN; ++c) qc[c] = _mm512_loadu_ps(qg + 16 * c);
#pragma GCC unroll 16
  for (int t = 0; t < 16; ++t) {
    const typename L::E* row = at(t);
#pragma GCC unroll 8
    for (int c = 0; c < CN; ++c) acc[t] = _mm512_fmadd_ps(qc[c], L::load(row + 16 * c), acc[t]);
  }
}

// The chunks of dot16 over a whole head for keys at(0..15).
template <class L, class At>
[[gnu::always_inline]] inline void dot16_head(const float* qg, int nc, const At& at, __m512 (&acc)[16]) {
  int c0 = 0;
  const auto from = [&](int c) { return [&at, c](int t) { return at(t) + 16 * c; }; };
  for (; c0 + 8 <= nc; c0 += 8) dot16<L, 8>(qg + 16 * c0, from(c0), acc);
  if (c0 + 4 <= nc) dot16<L, 4>(qg + 16 * c0, from(c0), acc), c0 += 4;
  if (c0 + 2 <= nc) dot16<L, 2>(qg + 16 * c0, from(c0), acc), c0 += 2;
  if (c0 < nc) dot16<L, 1>(qg + 16 * c0, from(c0), acc);
}

// Scores of head g x keys [t0, t0 + 16): for the heads left over from blocks of 4 (every head
// where no query heads share a kv head), 16 independent dot products reduced together.
template <class L>
inline void scores1x16(const float* q, const KvRows& k, int64_t first, int64_t t0, int g, int head_dim, float scale,
                       int64_t n, bool ahead, float* scratch) {
  using E = typename L::E;
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
  const int64_t p0 = first + t0;
  if (ahead && t0 + kAhead + 16 <= n)
    for (int t = 0; t < 16; ++t) prefetch_row(k.row<E>(p0 + kAhead + t), head_dim);
  const float* qg = q + g * head_dim;
  const int nc = head_dim / 16;
  if (k.one_page(p0, 16)) {  // the usual case: one pointer stepping by the stride
    const E* base = k.row<E>(p0);
    const int64_t stride = k.stride;
    dot16_head<L>(qg, nc, [base, stride](int t) { return base + t * stride; }, acc);
  } else {  // the 16 keys straddle two pages
    const E* rows[16];
    for (int t = 0; t < 16; ++t) rows[t] = k.row<E>(p0 + t);
    dot16_head<L>(qg, nc, [&rows](int t) { return rows[t]; }, acc);
  }
  _mm512_storeu_ps(scratch + g * n + t0, _mm512_mul_ps(sum16(acc), _mm512_set1_ps(scale)));
}

// GN heads' output columns [16 c0, 16 (c0 + cn)) as the value rows stream past (cn <= 8), the
// softmax numerators p[g] as weights; unnormalised.
template <class L, int GN, int CN>
inline void values(const float* const* p, const KvRows& v, int64_t first, int64_t n, int c0, int cn, bool ahead,
                   int head_dim, __m512 (*acc)[8]) {
  using E = typename L::E;
  if constexpr (CN > 0) cn = CN;  // a compile-time count: the column loop unrolls
  for (int g = 0; g < GN; ++g)
    for (int c = 0; c < 8; ++c) acc[g][c] = _mm512_setzero_ps();
  for (int64_t t = 0; t < n; ++t) {
    const E* vt = v.row<E>(first + t) + 16 * c0;
    if (ahead && t + kAhead < n) prefetch_row(v.row<E>(first + t + kAhead) + 16 * c0, head_dim);
    __m512 w[GN];
    for (int g = 0; g < GN; ++g) w[g] = _mm512_set1_ps(p[g][t]);
    for (int c = 0; c < cn; ++c) {
      const __m512 vc = L::load(vt + 16 * c);
      for (int g = 0; g < GN; ++g) acc[g][c] = _mm512_fmadd_ps(w[g], vc, acc[g][c]);
    }
  }
}

// values() for gn <= 2 heads and cn <= 8 chunks, with compile-time counts where they are common.
template <class L>
inline void values_for(int gn, const float* const* p, const KvRows& v, int64_t first, int64_t n, int c0, int cn,
                       bool ahead, int head_dim, __m512 (*acc)[8]) {
  if (gn == 2 && cn == 8) values<L, 2, 8>(p, v, first, n, c0, cn, ahead, head_dim, acc);
  else if (gn == 2) values<L, 2, 0>(p, v, first, n, c0, cn, ahead, head_dim, acc);
  else if (cn == 8) values<L, 1, 8>(p, v, first, n, c0, cn, ahead, head_dim, acc);
  else values<L, 1, 0>(p, v, first, n, c0, cn, ahead, head_dim, acc);
}

// Scores of gn <= 4 query rows (q_stride floats apart) against the one key row kt: out[g *
// out_stride]. Each row's sum is its own chain over the chunks, so one row alone scores alike.
template <class L>
inline void score_key(const float* q, int64_t q_stride, int gn, const typename L::E* kt, int nc, float scale,
                      float* out, int64_t out_stride) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int c = 0; c < nc; ++c) {
    const __m512 kc = L::load(kt + 16 * c);
    for (int g = 0; g < gn; ++g) acc[g] = _mm512_fmadd_ps(_mm512_loadu_ps(q + g * q_stride + 16 * c), kc, acc[g]);
  }
  for (int g = 0; g < gn; ++g) out[g * out_stride] = _mm512_reduce_add_ps(acc[g]) * scale;
}

// Output rows [0, rows) = (softmax weights of row r: p + r * p_stride, n of them) x value rows,
// times inv[r]: two rows x 128 columns in registers while the value rows stream past. ahead:
// prefetch rows ahead on the first pass over them.
template <class L>
inline void value_pass(const float* p, int64_t p_stride, int rows, const float* inv, const KvRows& v, int64_t first,
                       int64_t n, int head_dim, bool ahead, float* out, int64_t out_stride) {
  const int nc = head_dim / 16;
  for (int c0 = 0; c0 < nc; c0 += 8) {
    const int cn = std::min(8, nc - c0);
    for (int r0 = 0; r0 < rows; r0 += 2) {
      const int rn = std::min(2, rows - r0);
      __m512 acc[2][8];
      const float* pr[2] = {p + r0 * p_stride, p + (r0 + 1) * p_stride};
      values_for<L>(rn, pr, v, first, n, c0, cn, ahead && c0 == 0 && r0 == 0, head_dim, acc);
      for (int r = 0; r < rn; ++r)
        for (int c = 0; c < cn; ++c)
          _mm512_storeu_ps(out + (r0 + r) * out_stride + 16 * (c0 + c),
                           _mm512_mul_ps(acc[r][c], _mm512_set1_ps(inv[r0 + r])));
    }
  }
}

template <class L>
void attend_group_impl(const float* q, int n_q, const KvRows& k, const KvRows& v, int64_t first, int64_t pos,
                       int head_dim, float scale, const float* sinks, float* out, float* scratch) {
  using E = typename L::E;
  const int64_t n = pos - first + 1;
  const int nc = head_dim / 16;  // 16-float chunks per head
  // Scores: blocks of 4 heads x 4 keys, the heads left over 16 keys at a time, then what is left
  // one key at a time.
  const int g4 = n_q / 4 * 4;
  const int64_t t4 = n / 4 * 4;
  const int64_t t16 = n / 16 * 16;
  for (int g0 = 0; g0 < g4; g0 += 4)
    for (int64_t t0 = 0; t0 < t4; t0 += 4) scores4x4<L>(q, head_dim, k, first, t0, g0, head_dim, scale, n, scratch);
  for (int g = g4; g < n_q; ++g)
    for (int64_t t0 = 0; t0 < t16; t0 += 16)
      scores1x16<L>(q, k, first, t0, g, head_dim, scale, n, g4 == 0 && g == 0, scratch);
  for (int64_t t = 0; t < n; ++t)
    for (int g0 = 0; g0 < n_q; g0 += 4) {
      if (g0 < g4 ? t < t4 : t < t16) continue;  // a block above did it
      score_key<L>(q + g0 * head_dim, head_dim, std::min(4, n_q - g0), k.row<E>(first + t), nc, scale,
                   scratch + g0 * n + t, n);
    }
  float inv[256];  // 1 / softmax denominator per head (n_q <= 256, checked by attend_group)
  for (int g = 0; g < n_q; ++g) inv[g] = 1.0f / exp_row(scratch + g * n, n, sinks ? sinks + g : nullptr);
  value_pass<L>(scratch, n, n_q, inv, v, first, n, head_dim, true, out, head_dim);
}

// attend_rows (attention.h): R <= 4 query rows of one head, row r over keys [first, last[r]].
// Each row's scores, softmax and output are computed exactly as attend_group_impl computes them
// for that row alone (n_q = 1): keys below the row's last multiple of 16 reduced with sum16's
// tree (which blocks of 4 rows x 4 keys share with blocks of 1 x 16: every lane goes through the
// same additions), the rest one key at a time; past a row's end its softmax weights are exact
// zeros, which leave its value sums unchanged.
template <class L>
void attend_rows_impl(const float* q, int64_t q_stride, int R, const KvRows& k, const KvRows& v, int64_t first,
                      const int64_t* last, int head_dim, float scale, const float* sink, float* out,
                      int64_t out_stride, float* scratch) {
  using E = typename L::E;
  const int nc = head_dim / 16;
  const int64_t nmax = last[R - 1] - first + 1, t16_min = (last[0] - first + 1) / 16 * 16;
  if (R == 4)
    for (int64_t t0 = 0; t0 < t16_min; t0 += 4) scores4x4<L>(q, q_stride, k, first, t0, 0, head_dim, scale, nmax, scratch);
  float inv[4];
  for (int r = 0; r < R; ++r) {
    const int64_t n = last[r] - first + 1, t16 = n / 16 * 16;
    const float* qr = q + r * q_stride;
    float* sr = scratch + r * nmax;
    for (int64_t t0 = R == 4 ? t16_min : 0; t0 < t16; t0 += 16)
      scores1x16<L>(qr, k, first, t0, 0, head_dim, scale, nmax, false, sr);
    for (int64_t t = t16; t < n; ++t) score_key<L>(qr, q_stride, 1, k.row<E>(first + t), nc, scale, sr + t, nmax);
    inv[r] = 1.0f / exp_row(sr, n, sink);
    std::fill(sr + n, sr + nmax, 0.0f);
  }
  value_pass<L>(scratch, nmax, R, inv, v, first, nmax, head_dim, false, out, out_stride);
}

}  // namespace

void attend_rows_avx512(const float* q, int64_t q_stride, int R, const KvRows& k, const KvRows& v, DType t,
                        int64_t first, const int64_t* last, int head_dim, float scale, const float* sink, float* out,
                        int64_t out_stride, float* scratch) {
  if (t == DType::F32)
    attend_rows_impl<LoadF32>(q, q_stride, R, k, v, first, last, head_dim, scale, sink, out, out_stride, scratch);
  else if (t == DType::BF16)
    attend_rows_impl<LoadBF16>(q, q_stride, R, k, v, first, last, head_dim, scale, sink, out, out_stride, scratch);
  else
    attend_rows_impl<LoadF16>(q, q_stride, R, k, v, first, last, head_dim, scale, sink, out, out_stride, scratch);
}

void attend_group_avx512(const float* q, int n_q, const KvRows& k, const KvRows& v, DType t, int64_t first,
                         int64_t pos, int head_dim, float scale, const float* sinks, float* out, float* scratch) {
  if (t == DType::F32) attend_group_impl<LoadF32>(q, n_q, k, v, first, pos, head_dim, scale, sinks, out, scratch);
  else if (t == DType::BF16) attend_group_impl<LoadBF16>(q, n_q, k, v, first, pos, head_dim, scale, sinks, out, scratch);
  else attend_group_impl<LoadF16>(q, n_q, k, v, first, pos, head_dim, scale, sinks, out, scratch);
}

}  // namespace moe::cpu::detail
