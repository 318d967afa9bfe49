// AVX-512 MXFP4 matmul (gpt-oss experts as shipped). Compiled with per-file ISA flags and only
// called after CPUID said yes. A block of 32 codes is split into nibbles in column order and
// decoded by one vpermps against the 16-entry e2m1 table (the table is exactly one zmm), then
// fp32 FMAs against fp32 activations; the block's power-of-two scale multiplies its sum.
#include <immintrin.h>

#include <algorithm>

#include "kernels/cpu/qavx512.h"

namespace moe::cpu::qk {

namespace {

inline __m512 e2m1_table() {
  return _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f,
                        -6.0f);
}

// 16 bytes of codes -> columns [0, 16) and [16, 32) as fp32.
inline void mx4_decode32(const uint8_t* p, const __m512& lut, __m512* f0, __m512* f1) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(0x0f));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0f));
  *f0 = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)), lut);
  *f1 = _mm512_permutexvar_ps(_mm512_cvtepu8_epi32(_mm_unpackhi_epi8(lo, hi)), lut);
}

template <int MT>
void mx4_row(const WeightView& w, int64_t n, const float* x, int64_t m0, float out[MT]) {
  const int64_t K = w.cols;
  const uint8_t* wr = static_cast<const uint8_t*>(w.data) + n * K / 2;
  const uint8_t* sc = static_cast<const uint8_t*>(w.scales) + n * (K / 32);
  const __m512 lut = e2m1_table();
  // Two accumulators per row, for even and odd blocks: one chain of FMAs would wait on its own
  // latency every block and hold a GEMV well below the memory bandwidth.
  __m512 even[MT], odd[MT];
  for (int i = 0; i < MT; ++i) even[i] = odd[i] = _mm512_setzero_ps();
  const auto block = [&](int64_t c, __m512* tot) {
    __m512 f0, f1;
    prefetch(wr + c / 2);
    mx4_decode32(wr + c / 2, lut, &f0, &f1);
    const __m512 s = _mm512_set1_ps(e8m0_to_f32(sc[c / 32]));
    for (int i = 0; i < MT; ++i) {
      const float* xr = x + (m0 + i) * K + c;
      const __m512 blk = _mm512_fmadd_ps(f1, _mm512_loadu_ps(xr + 16), _mm512_mul_ps(f0, _mm512_loadu_ps(xr)));
      tot[i] = _mm512_fmadd_ps(blk, s, tot[i]);
    }
  };
  int64_t c = 0;
  for (; c + 64 <= K; c += 64) {
    block(c, even);
    block(c + 32, odd);
  }
  if (c < K) block(c, even);
  for (int i = 0; i < MT; ++i) out[i] = _mm512_reduce_add_ps(_mm512_add_ps(even[i], odd[i]));
}

template <int MT>
struct Mx4Row {
  static void run(const WeightView& w, int64_t n, const float* x, int64_t m0, float* out) { mx4_row<MT>(w, n, x, m0, out); }
};

}  // namespace

std::unique_ptr<Rows> prepare_mx4_avx512(const Job& job) {
  return make_rows([job](int64_t n0, int64_t n1) { tiled_rows<Mx4Row>(job, job.x, n0, n1); });
}

}  // namespace moe::cpu::qk
