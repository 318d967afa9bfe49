// AVX-512 MXFP4 matmul (gpt-oss experts as shipped). Compiled with per-file ISA flags and only
// called after CPUID said yes. fp32 activations (the MXFP4 fixtures match transformers to ~1e-6).
//
// Decode costs four instructions per 32 codes: vpmovzxbd widens the 16 code bytes to dwords, and
// vpermps, which reads only the low 4 bits of each index, maps the low nibbles (even columns)
// against the 16-entry e2m1 table (exactly one zmm); a shift by 4 and a second vpermps give the odd
// columns. For that, x is prepared once per call with each 32-block's even columns first, then its
// odd ones. The e8m0 block scales are widened 16 at a time and broadcast from a register. The
// first version (masks, unpacks, a scalar scale per block) ran GEMV at ~15 GB/s per core in cache:
// compute-bound below the DRAM bandwidth of 2 cores.
#include <immintrin.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "kernels/cpu/qavx512.h"

namespace moe::cpu::qk {

namespace {

inline __m512 e2m1_table() {
  return _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f,
                        -6.0f);
}

// 2^(s - 127) for n <= 16 e8m0 scales, as e8m0_to_f32 (s = 0 is the subnormal 2^-127).
inline __m512 mx4_scales16(const uint8_t* sc, int n) {
  const __m512i e = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(__mmask16((1u << n) - 1u), sc));
  const __m512i bits = _mm512_slli_epi32(e, 23);
  return _mm512_castsi512_ps(
      _mm512_mask_mov_epi32(bits, _mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()), _mm512_set1_epi32(0x00400000)));
}

// x [M, K] with each 32-block's columns reordered: 0, 2, ..., 30, then 1, 3, ..., 31.
struct Mx4Acts {
  std::vector<float> x;
};

void prep_mx4(const float* x, int64_t M, int64_t K, Mx4Acts& a) {
  a.x.resize(size_t(M * K));
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int64_t i = 0; i < M * K; i += 32) {
    const __m512 lo = _mm512_loadu_ps(x + i), hi = _mm512_loadu_ps(x + i + 16);
    _mm512_storeu_ps(&a.x[size_t(i)], _mm512_permutex2var_ps(lo, even, hi));
    _mm512_storeu_ps(&a.x[size_t(i + 16)], _mm512_permutex2var_ps(lo, odd, hi));
  }
}

template <int MT>
void mx4_row(const WeightView& w, int64_t n, const Mx4Acts& a, int64_t m0, float out[MT]) {
  const int64_t K = w.cols, nb = K / 32;
  const uint8_t* wr = static_cast<const uint8_t*>(w.data) + n * K / 2;
  const uint8_t* sc = static_cast<const uint8_t*>(w.scales) + n * nb;
  const float* xp = a.x.data() + m0 * K;
  const __m512 lut = e2m1_table();
  // Two accumulators per row, for even and odd blocks: one chain of FMAs would wait on its own
  // latency every block.
  __m512 even[MT], odd[MT];
  for (int i = 0; i < MT; ++i) even[i] = odd[i] = _mm512_setzero_ps();
  const auto block = [&](int64_t b, __m512 s, __m512* tot) {
    const __m512i codes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + b * 16)));
    const __m512 fe = _mm512_permutexvar_ps(codes, lut);
    const __m512 fo = _mm512_permutexvar_ps(_mm512_srli_epi32(codes, 4), lut);
    for (int i = 0; i < MT; ++i) {
      const float* xr = xp + i * K + b * 32;
      const __m512 blk = _mm512_fmadd_ps(fo, _mm512_loadu_ps(xr + 16), _mm512_mul_ps(fe, _mm512_loadu_ps(xr)));
      tot[i] = _mm512_fmadd_ps(blk, s, tot[i]);
    }
  };
  const auto lane = [](__m512 v, int j) { return _mm512_permutexvar_ps(_mm512_set1_epi32(j), v); };
  for (int64_t g = 0; g < nb; g += 16) {
    const int cnt = int(std::min<int64_t>(16, nb - g));
    const __m512 s16 = mx4_scales16(sc + g, cnt);
    int j = 0;
    for (; j + 2 <= cnt; j += 2) {
      if ((j & 3) == 0) prefetch(wr + (g + j) * 16);  // one 64-byte line per 4 blocks
      block(g + j, lane(s16, j), even);
      block(g + j + 1, lane(s16, j + 1), odd);
    }
    if (j < cnt) block(g + j, lane(s16, j), even);
  }
  for (int i = 0; i < MT; ++i) out[i] = _mm512_reduce_add_ps(_mm512_add_ps(even[i], odd[i]));
}

template <int MT>
struct Mx4Row {
  static void run(const WeightView& w, int64_t n, const Mx4Acts& a, int64_t m0, float* out) {
    mx4_row<MT>(w, n, a, m0, out);
  }
};

}  // namespace

std::unique_ptr<Rows> prepare_mx4_avx512(const Job& job, PrepCache* cache) {
  const auto make = [&] {
    auto a = std::make_shared<Mx4Acts>();
    prep_mx4(job.x, job.M, job.w.cols, *a);
    return std::shared_ptr<const Mx4Acts>(std::move(a));
  };
  std::shared_ptr<const Mx4Acts> a = cache ? cache->get<Mx4Acts>(job, 3, make) : make();
  return make_rows([job, a = std::move(a)](int64_t n0, int64_t n1) { tiled_rows<Mx4Row>(job, *a, n0, n1); });
}

}  // namespace moe::cpu::qk
