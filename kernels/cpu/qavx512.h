// Internal to the AVX-512 quantized-matmul files (compiled with AVX-512 flags only).
#pragma once
#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/qkernels.h"

namespace moe::cpu::qk {

// Quantizes one 32-block of x (semantics: qmatmul.h); returns the codes as 32 int32.
inline void quant_block(const float* x, float* d, __m512i* qa, __m512i* qb) {
  const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
  const __m512 inv = _mm512_set1_ps(act_inv_scale(amax, d));
  // vcvtps2dq rounds to nearest-even in the default MXCSR mode, as std::nearbyint does.
  *qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, inv));
  *qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, inv));
}

constexpr int kMaxTile = 4;  // rows of x per pass over a weight row (register tile)

// Software prefetch distance along a weight stream. The hardware prefetcher alone left GEMV at
// 60-70% of the streaming-read bandwidth on the dev machine; 2 KiB ahead measured 80-100%
// (1 KiB and 4 KiB were worse). Past the end of the matrix it is harmless: prefetches never fault.
constexpr int kPrefetchBytes = 2048;
inline void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0); }

// Runs weight rows [n0, n1) against all rows of x in tiles of up to kMaxTile rows of x;
// Row<MT>::run(w, n, arg, m0, out) computes out[i] = y[m0 + i, n] without bias.
template <template <int> class Row, class Arg>
void tiled_rows(const Job& job, const Arg& arg, int64_t n0, int64_t n1) {
  const int64_t N = job.w.rows, M = job.M;
  float out[kMaxTile];
  for (int64_t n = n0; n < n1; ++n) {
    const float bias = job.bias ? job.bias[n] : 0.0f;
    for (int64_t m0 = 0; m0 < M; m0 += kMaxTile) {
      const int mt = int(std::min<int64_t>(kMaxTile, M - m0));
      switch (mt) {
        case 1: Row<1>::run(job.w, n, arg, m0, out); break;
        case 2: Row<2>::run(job.w, n, arg, m0, out); break;
        case 3: Row<3>::run(job.w, n, arg, m0, out); break;
        default: Row<4>::run(job.w, n, arg, m0, out); break;
      }
      for (int i = 0; i < mt; ++i) job.y[(m0 + i) * N + n] = out[i] + bias;
    }
  }
}

// Q4/Q4Z GEMM for many rows of x (qgemm_avx512_q4m.cpp).
std::unique_ptr<Rows> prepare_q4_mlanes(const Job& job);
// I8 GEMM for many rows of x (qgemm_avx512_i8m.cpp).
std::unique_ptr<Rows> prepare_i8_mlanes(const Job& job);
// From this many rows of x on, Q4/Q4Z and I8 take the rows-in-lanes kernels.
constexpr int64_t kMlanesMinRows = 12;
// I8 and F8E4M3, any M (qgemm_avx512_i8f8.cpp).
std::unique_ptr<Rows> prepare_i8_avx512(const Job& job);
std::unique_ptr<Rows> prepare_f8_avx512(const Job& job);
std::unique_ptr<Rows> prepare_mx4_avx512(const Job& job);

}  // namespace moe::cpu::qk
