// Internal to the AVX-512 quantized-matmul files (compiled with AVX-512 flags only).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>
#include <type_traits>

#include "kernels/cpu/qkernels.h"

namespace moe::cpu::qk {

// Storage whose rows are read a cache line at a time (x in the lanes layout, tile operands): a
// std::vector's 16-byte alignment split every 64-byte load and tile row over two lines.
template <class T>
struct Align64 {
  using value_type = T;
  Align64() = default;
  template <class U>
  explicit Align64(const Align64<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const Align64<U>&) const { return true; }
};
template <class T>
using avector = std::vector<T, Align64<T>>;

// Q4 blocks b .. b + 3 of one row (v: their 64 packed bytes, block c's 16 bytes holding its columns
// 0-15 in the low nibbles and 16-31 in the high ones) as codes, two blocks per vector, each
// block's 32 columns in order: pair[0] blocks b, b + 1; pair[1] blocks b + 2, b + 3.
inline void split_nibbles(__m512i v, __m512i* pair) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i idx01 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0), idx23 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
  const __m512i lo = _mm512_and_si512(v, low4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
  pair[0] = _mm512_permutex2var_epi64(lo, idx01, hi);
  pair[1] = _mm512_permutex2var_epi64(lo, idx23, hi);
}

// n fp16 scales widened to f32, 16 at a time (vcvtph2ps is exact).
inline void widen_f16(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t g = 0; g < n; g += 16) {
    const __mmask16 m = n - g >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - g)) - 1);
    _mm512_mask_storeu_ps(dst + g, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + g)));
  }
}

// Quantizes one 32-block of x (semantics: qmatmul.h); returns the codes as 32 int32.
inline void quant_block(const float* x, float* d, __m512i* qa, __m512i* qb) {
  const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
  const __m512 inv = _mm512_set1_ps(act_inv_scale(amax, d));
  // vcvtps2dq rounds to nearest-even in the default MXCSR mode, as std::nearbyint does.
  *qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, inv));
  *qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, inv));
}

// Software prefetch distance along a weight stream. The hardware prefetcher alone left GEMV at
// 60-70% of the streaming-read bandwidth on the dev machine; 2 KiB ahead measured 80-100%
// (1 KiB and 4 KiB were worse). Past the end of the matrix it is harmless: prefetches never fault.
// Into L2 (T1), not L1: on a 2-core Zen 4, decode of the Qwen3 shape went from 19.4-20.1 to
// 23.9-25.2 tok/s (2 threads) and the I8 GEMV of its attention from 66-79 to 54-61 us; L1's
// miss buffers, not DRAM, had capped the stream. T1 at 4 KiB was slower end to end.
constexpr int kPrefetchBytes = 2048;
inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T1); }

// The one order in which the Q4 and I8 kernels add a row's 16 lane sums (every path: GEMV, small
// tiles, rows in lanes), so that y[m, n] has the same bits whatever M its call had: a batch's
// composition must not change a sequence's tokens. Lane i + 8 joins lane i, then i + 4, then the
// pairs (0, 2) and (1, 3). tree16 does the same over 16 vectors, elementwise; tree8 is its part
// after the first level (a kernel that already holds lane i + lane i + 8 in a[i]).
inline float lanes_sum(__m512 v) {
  const __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 c = _mm_add_ps(b, _mm_shuffle_ps(b, b, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm_cvtss_f32(_mm_add_ss(c, _mm_shuffle_ps(c, c, _MM_SHUFFLE(1, 1, 1, 1))));
}
inline __m512 tree8(const __m512* a) {
  __m512 b[4];
  for (int i = 0; i < 4; ++i) b[i] = _mm512_add_ps(a[i], a[i + 4]);
  return _mm512_add_ps(_mm512_add_ps(b[0], b[2]), _mm512_add_ps(b[1], b[3]));
}
inline __m512 tree16(const __m512* v) {
  __m512 a[8];
  for (int i = 0; i < 8; ++i) a[i] = _mm512_add_ps(v[i], v[i + 8]);
  return tree8(a);
}

// Sums each 128-bit lane of a, b, c, d: lane 4r + k of the result is lane r of input k. In-lane
// unpacks only. The GEMV kernels sum four chunks' vpdpbusd lanes this way, so the int -> float
// conversion and the scale FMA run once per 16 lane sums instead of once per 4.
inline __m512i hsum_runs(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
}

// Four 64-byte chunks transposed by dwords within each 128-bit lane: t[j] dword 4r + k = v[k]
// dword 4r + j. With weights and x both so arranged, vpdpbusd's lane 4r + k meets only bytes
// under 128-bit lane r of chunk k in every t[j], so adding the four products lane by lane gives
// hsum_runs' sums (integer adds: the same bits in any order). The tile kernels pay these 8
// shuffles once per weight quad instead of hsum_runs' 9 ops per quad and row of x.
inline void transpose_dwords(const __m512i* v, __m512i* t) {
  const __m512i a = _mm512_unpacklo_epi32(v[0], v[1]), b = _mm512_unpackhi_epi32(v[0], v[1]);
  const __m512i c = _mm512_unpacklo_epi32(v[2], v[3]), d = _mm512_unpackhi_epi32(v[2], v[3]);
  t[0] = _mm512_unpacklo_epi64(a, c), t[1] = _mm512_unpackhi_epi64(a, c);
  t[2] = _mm512_unpacklo_epi64(b, d), t[3] = _mm512_unpackhi_epi64(b, d);
}

// ---- rows of x in lanes (qgemm_avx512_q4m.cpp, qgemm_avx512_i8m.cpp) ----------------------
namespace mlanes {
constexpr int kLanes = 16;      // rows of x per vector
constexpr int kRowsW = 4;       // weight rows per pass
// 16-row blocks of x per pass over the weights: at most 8 (128 rows), and no more than keep their
// int8 copy (16 x K bytes each) within 512 KiB of L2, since every run of weight rows reads all
// of them again. (Mixtral's down projection, K = 14336, would stream 1.8 MB of x per run.)
inline int64_t blocks_pass(int64_t K) { return std::clamp<int64_t>((int64_t(512) << 10) / (16 * K), 1, 8); }

// Calls f(std::integral_constant<int, NT>) for nt in 1..kRowsW (a kernel's row-count template).
template <class F>
inline void with_nt(int nt, F&& f) {
  switch (nt) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    default: f(std::integral_constant<int, 4>{}); break;
  }
}

// The rows-in-lanes kernels add a row's 32-blocks in the order of the GEMV kernels (a partial sum
// per lane of the GEMV's quads, then lanes_sum), so that y does not depend on M. They hold one
// lane's partial sum at a time: phase i visits blocks first(i), first(i) + per_quad, ... and x is
// stored in that visiting order, so it is still read in order (visiting blocks 8 KiB apart cost
// 15-35%). Q4: 16 phases per quad of 16 blocks, lane L = block 4 (L % 4) + L / 4 (q4_first;
// short rows pair the lanes, qgemm_avx512_q4m.cpp). I8: 8 phases, block p of each quad of 8,
// whose halves sit in lanes 8 (p % 2) + p / 2 and that + 4. Returns each block's position in
// that order.
inline int q4_first(int lane) { return 4 * (lane % 4) + lane / 4; }
inline int i8_first(int p) { return p; }
inline std::vector<int32_t> phase_positions(int64_t nb, int per_quad, int (*first)(int)) {
  std::vector<int32_t> pos(size_t(nb), 0);
  int32_t k = 0;
  for (int i = 0; i < per_quad; ++i)
    for (int64_t b = first(i); b < nb; b += per_quad) pos[size_t(b)] = k++;
  return pos;
}

// x [M, K] as int8 codes (quant_block) in the lanes layout, blocks at their positions pos[b]:
// `codes` [nmb, K/4, 16, 4] bytes, each 64-byte vector holding 4 consecutive columns of a 16-row
// block, with `offset` added to every code (128 makes them unsigned); `d` [nmb, K/32, 16] the
// block scales, and when `sums` is given, each (row, block)'s code sum before the offset at the
// same index. Rows past M keep code `offset`, scale 0 and sum 0. Returns nmb.
template <class Codes>
inline int64_t quantize_lanes(const float* x, int64_t M, int64_t K, uint8_t offset, const std::vector<int32_t>& pos,
                              Codes& codes, std::vector<float>& d, std::vector<int32_t>* sums) {
  const int64_t nb = K / 32, nmb = (M + kLanes - 1) / kLanes;
  codes.assign(size_t(nmb * K * kLanes), offset);
  d.assign(size_t(nmb * nb * kLanes), 0.0f);
  if (sums) sums->assign(size_t(nmb * nb * kLanes), 0);
  const __m512i off = _mm512_set1_epi32(offset);
  for (int64_t m = 0; m < M; ++m) {
    const int64_t mb = m / kLanes, l = m % kLanes;
    for (int64_t blk = 0; blk < nb; ++blk) {
      const int64_t k = pos[size_t(blk)];
      float dr;
      __m512i qa, qb;
      quant_block(x + m * K + blk * 32, &dr, &qa, &qb);
      const size_t o = size_t((mb * nb + k) * kLanes + l);
      if (sums) (*sums)[o] = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb));
      alignas(32) uint8_t q[32];  // codes + offset, truncated to bytes (both fit in 8 bits)
      _mm_store_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(_mm512_add_epi32(qa, off)));
      _mm_store_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtepi32_epi8(_mm512_add_epi32(qb, off)));
      for (int t = 0; t < 8; ++t) std::memcpy(&codes[size_t(((mb * (K / 4) + k * 8 + t) * kLanes + l) * 4)], q + 4 * t, 4);
      d[o] = dr;
    }
  }
  return nmb;
}

// Writes y[r0 + l, n + j] = out[j] lane l * scale[j] + bias[j] for the block's rows below M and
// j < nt: the 4 x 16 sums are transposed so that each row of y takes its nt columns in one store
// (64 scalar stores, 16 rows of y apart, cost 10% of a prompt step).
inline void store_rows(const Job& job, const __m512* out, int64_t r0, int64_t n, int nt, const float* scale,
                       const float* bias) {
  static_assert(kRowsW == 4);
  __m512 o[4];
  for (int j = 0; j < 4; ++j) o[j] = j < nt ? _mm512_mul_ps(out[j], _mm512_set1_ps(scale[j])) : _mm512_setzero_ps();
  const __m512 t0 = _mm512_unpacklo_ps(o[0], o[1]), t1 = _mm512_unpackhi_ps(o[0], o[1]);
  const __m512 t2 = _mm512_unpacklo_ps(o[2], o[3]), t3 = _mm512_unpackhi_ps(o[2], o[3]);
  // u[e]'s 128-bit lane q holds row 4q + e: (o0, o1, o2, o3) of that row.
  const __m512 u[4] = {_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
                       _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2))),
                       _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3))),
                       _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)))};
  const __m128 b = _mm_load_ps(bias);
  const __mmask8 mask = __mmask8((1u << nt) - 1);
  const int64_t N = job.w.rows, rows_left = std::min<int64_t>(kLanes, job.M - r0);
  float* y = job.y + r0 * N + n;
  for (int e = 0; e < 4; ++e) {
    if (e < rows_left) _mm_mask_storeu_ps(y + e * N, mask, _mm_add_ps(_mm512_castps512_ps128(u[e]), b));
    if (4 + e < rows_left) _mm_mask_storeu_ps(y + (4 + e) * N, mask, _mm_add_ps(_mm512_extractf32x4_ps(u[e], 1), b));
    if (8 + e < rows_left) _mm_mask_storeu_ps(y + (8 + e) * N, mask, _mm_add_ps(_mm512_extractf32x4_ps(u[e], 2), b));
    if (12 + e < rows_left) _mm_mask_storeu_ps(y + (12 + e) * N, mask, _mm_add_ps(_mm512_extractf32x4_ps(u[e], 3), b));
  }
}

// The pass structure both kernels share, over weight rows [n0, n1) and nmb 16-row blocks of x:
// per blocks_pass(K) blocks of x and run of up to kRowsW weight rows from n, ready(n, nt) prepares the
// rows (unpacks, sums), block(n, nt, mb, mbt, next_rows, out) fills out[m * kRowsW + j]'s lanes with
// y[(mb + m) * 16 + l, n + j], m < mbt <= MB blocks of x, before the row factor row_scale(n + j) and
// the bias. next_rows is the size of the next run (which starts at row n + nt) for the first
// blocks of x of each pass, and 0 otherwise: the kernels prefetch that run's weights while these
// blocks compute.
template <int MB, class Ready, class Block, class Scale>
void drive(const Job& job, int64_t nmb, int64_t n0, int64_t n1, Ready&& ready, Block&& block, Scale&& row_scale) {
  __m512 out[MB * kRowsW];
  const int64_t bp = blocks_pass(job.w.cols);
  for (int64_t mg = 0; mg < nmb; mg += bp)
    for (int64_t n = n0; n < n1; n += kRowsW) {
      const int nt = int(std::min<int64_t>(kRowsW, n1 - n));
      ready(n, nt);
      alignas(16) float scale[kRowsW] = {}, bias[kRowsW] = {};
      for (int j = 0; j < nt; ++j) scale[j] = row_scale(n + j), bias[j] = job.bias ? job.bias[n + j] : 0.0f;
      const int next_rows = int(std::clamp<int64_t>(n1 - n - nt, 0, kRowsW));
      const int64_t mend = std::min(nmb, mg + bp);
      for (int64_t mb = mg; mb < mend; mb += MB) {
        const int mbt = int(std::min<int64_t>(MB, mend - mb));
        block(n, nt, mb, mbt, mb == mg ? next_rows : 0, out);
        for (int m = 0; m < mbt; ++m) store_rows(job, out + m * kRowsW, (mb + m) * kLanes, n, nt, scale, bias);
      }
    }
}
}  // namespace mlanes

// Q4/Q4Z GEMM for many rows of x (qgemm_avx512_q4m.cpp).
std::unique_ptr<Rows> prepare_q4_mlanes(const Job& job);
// The same on the AMX tile unit, bit for bit (qgemm_amx.cpp); only where amx_gemm (amx.h).
std::unique_ptr<Rows> prepare_q4_amx(const Job& job);
// I8 GEMM for many rows of x (qgemm_avx512_i8m.cpp).
std::unique_ptr<Rows> prepare_i8_mlanes(const Job& job);
// I8 and F8E4M3, any M (qgemm_avx512_i8f8.cpp).
std::unique_ptr<Rows> prepare_i8_avx512(const Job& job, PrepCache* cache);
std::unique_ptr<Rows> prepare_f8_avx512(const Job& job);
std::unique_ptr<Rows> prepare_mx4_avx512(const Job& job, PrepCache* cache);

}  // namespace moe::cpu::qk
