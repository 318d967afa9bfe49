// AVX-512 MXFP4 matmul (gpt-oss experts as shipped). Compiled with per-file ISA flags and only
// called after CPUID said yes. fp32 activations (the MXFP4 fixtures match transformers to ~1e-6).
//
// Decode works on 4 blocks (64 code bytes) at once: vpermps, which reads only the low 4 bits of
// each dword index, maps the raw code bytes against the 16-entry e2m1 table (exactly one zmm), and
// shifts by 4, 8, ..., 28 bring each dword's next code down: 8 vpermps and 7 shifts per 128
// codes, with no widening, and the 4 block scales applied once per group as one vector. x is
// prepared once per call in the matching order (prep_mx4). The kernel before (vpmovzxbd of each
// block, its scale broadcast and applied per block) ran GEMV at 9.4 GB/s per core in cache and
// 15.7 GB/s on 2 cores from DRAM: compute-bound at half the DRAM bandwidth.
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

// x [M, K] reordered for the kernel: K in groups of 128 columns (4 blocks; a last partial group
// holds 1-3 blocks), each group as 8 vectors t = 0..7 whose lane i holds column
// 32 (i / 4) + 8 (i % 4) + t of the group (lanes of absent blocks are zero).
struct Mx4Acts {
  std::vector<float> x;
  int64_t stride = 0;  // floats per row: 128 per group
};

void prep_mx4(const float* x, int64_t M, int64_t K, Mx4Acts& a) {
  const int64_t groups = (K + 127) / 128;
  a.stride = groups * 128;
  a.x.assign(size_t(M * a.stride), 0.0f);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t g = 0; g < groups; ++g) {
      float* dst = &a.x[size_t(m * a.stride + g * 128)];
      const float* src = x + m * K + g * 128;
      const int64_t cols = std::min<int64_t>(128, K - g * 128);
      for (int t = 0; t < 8; ++t)
        for (int i = 0; i < 16; ++i) {
          const int64_t c = 32 * (i / 4) + 8 * (i % 4) + t;
          if (c < cols) dst[t * 16 + i] = src[c];
        }
    }
}

template <int MT>
void mx4_row(const WeightView& w, int64_t n, const Mx4Acts& a, int64_t m0, float out[MT]) {
  const int64_t K = w.cols, nb = K / 32;
  const uint8_t* wr = static_cast<const uint8_t*>(w.data) + n * K / 2;
  const uint8_t* sc = static_cast<const uint8_t*>(w.scales) + n * nb;
  const float* xp = a.x.data() + m0 * a.stride;
  const __m512 lut = e2m1_table();
  // Lanes 4q..4q+3 of a group's vectors belong to its block q: the scale index of each lane.
  const __m512i quad = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  // Two accumulators per row, for even and odd groups: one chain of FMAs would wait on its own
  // latency every group.
  __m512 even[MT], odd[MT];
  for (int i = 0; i < MT; ++i) even[i] = odd[i] = _mm512_setzero_ps();
  // One group: 64 code bytes (4 blocks) in one vector, dword lane i holding 8 codes; vpermps
  // reads only the low 4 bits of each index, so shifting the dwords by 4 t gives every lane's
  // code t with no widening. The block scales apply once per group, per lane.
  const auto group = [&](int64_t g, int nblk, __m512 s4, __m512* tot) {
    const __m512i v = nblk == 4 ? _mm512_loadu_si512(wr + g * 64)
                                : _mm512_maskz_loadu_epi8((__mmask64(1) << (16 * nblk)) - 1, wr + g * 64);
    __m512 wv[8];
    wv[0] = _mm512_permutexvar_ps(v, lut);
    for (int t = 1; t < 8; ++t) wv[t] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, unsigned(4 * t)), lut);
    for (int i = 0; i < MT; ++i) {
      const float* xr = xp + i * a.stride + g * 128;
      __m512 a0 = _mm512_mul_ps(wv[0], _mm512_loadu_ps(xr)), a1 = _mm512_mul_ps(wv[1], _mm512_loadu_ps(xr + 16));
      for (int t = 2; t < 8; t += 2) {
        a0 = _mm512_fmadd_ps(wv[t], _mm512_loadu_ps(xr + 16 * t), a0);
        a1 = _mm512_fmadd_ps(wv[t + 1], _mm512_loadu_ps(xr + 16 * (t + 1)), a1);
      }
      tot[i] = _mm512_fmadd_ps(_mm512_add_ps(a0, a1), s4, tot[i]);
    }
  };
  const int64_t ng = (nb + 3) / 4;
  for (int64_t g0 = 0; g0 < ng; g0 += 4) {  // 16 blocks' scales widened at a time
    const int cnt = int(std::min<int64_t>(16, nb - g0 * 4));
    const __m512 s16 = mx4_scales16(sc + g0 * 4, cnt);
    for (int64_t g = g0; g < std::min(ng, g0 + 4); ++g) {
      prefetch(wr + g * 64);
      const int nblk = int(std::min<int64_t>(4, nb - g * 4));
      const __m512i idx = _mm512_add_epi32(quad, _mm512_set1_epi32(int(4 * (g - g0))));
      group(g, nblk, _mm512_permutexvar_ps(idx, s16), (g & 1) ? odd : even);
    }
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
