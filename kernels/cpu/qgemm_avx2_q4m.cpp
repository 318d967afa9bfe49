// AVX2 Q4/Q4Z for M >= kLanesMinRows (qavx2.h): 8 rows of x in the vector lanes, for prefill and
// large batches. The tile kernel of qgemm_avx2.cpp keeps a quad's unpacked weights and 4 rows'
// sums in registers: on AVX2's 16 registers that spilled (a Zen 3 ran it at about a quarter of its
// register-to-register vpmaddubsw rate). Here each weight dword (4 codes) of a decoded copy of the
// row is spread over the lanes and meets the same 4 columns of 8 rows of x at once, so the float
// work of a 32-column block is one conversion and one FMA for 8 rows, and the registers hold the
// 8 run sums, not the weights.
//
// Same bits as the tiles (and so as the GEMV): per row of x, the integer sum of a block is exact
// whatever the order, and the float steps are the tile's: f = (int sum + bias term) as float
// (Q4Z: f - z * sum of codes), then acc[run_lane] = fma(f, scale * d, acc[run_lane]) block after
// block, and at the end hsum's tree over the 8 lanes. Blocks past K (a last, partial quad) add
// fma(0, 0, acc), as the tiles' zero padding does.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cpu/qavx2.h"

namespace moe::cpu::qk::avx2 {

namespace {

constexpr int kLanes = 8;  // rows of x in a group

// Activations in groups of 8 rows of x (rows past M zero), blocks padded to whole quads:
//   q [group][kp / 4][8][4] int8: for each 4 columns, the 4 codes of each of the 8 rows;
//   d [group][kp / 32][8] f32: block scales; b [group][kp / 32][8] i32: code_sum_term (qavx2.h).
struct LaneActs {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> b;
  int64_t kp = 0, kb = 0, groups = 0;
};

void prep_lanes(const Acts& nat, int64_t M, int64_t K, bool zp, LaneActs& a) {
  a.kp = (K + 255) / 256 * 256;
  a.kb = a.kp / 32;
  a.groups = (M + kLanes - 1) / kLanes;
  const int64_t nb = K / 32;
  a.q.assign(size_t(a.groups * a.kp * kLanes), 0);
  a.d.assign(size_t(a.groups * a.kb * kLanes), 0.0f);
  a.b.assign(size_t(a.groups * a.kb * kLanes), 0);
  for (int64_t m = 0; m < M; ++m) {
    const int64_t g = m / kLanes, r = m % kLanes;
    const int8_t* src = &nat.q[size_t(m * K)];
    int8_t* dst = &a.q[size_t(g * a.kp * kLanes + r * 4)];
    for (int64_t c = 0; c < K / 4; ++c) std::memcpy(dst + c * 4 * kLanes, src + c * 4, 4);
    for (int64_t blk = 0; blk < nb; ++blk) {
      const size_t o = size_t((g * a.kb + blk) * kLanes + r);
      a.d[o] = nat.d[size_t(m * nb + blk)];
      a.b[o] = code_sum_term(src + blk * 32, zp);
    }
  }
}

// One weight row decoded: codes 0..15 in column order, per 32-column block its scale and (Q4Z)
// zero point as floats; zero past K.
template <int G, bool ZP>
void decode_row(const WeightView& w, int64_t n, int64_t kp, uint8_t* q, float* s, float* z) {
  const int64_t K = w.cols, nb = K / 32, ng = K / G;
  const uint8_t* wr = static_cast<const uint8_t*>(w.data) + n * K / 2;
  const uint16_t* sr = static_cast<const uint16_t*>(w.scales) + n * ng;
  const __m128i low4 = _mm_set1_epi8(0x0f);
  for (int64_t blk = 0; blk < nb; ++blk) {
    // A block's 16 bytes: the low nibbles are columns 0..15, the high ones 16..31 (q4_code).
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + blk * 16));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + blk * 32), _mm_and_si128(v, low4));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + blk * 32 + 16), _mm_and_si128(_mm_srli_epi16(v, 4), low4));
    s[blk] = _cvtsh_ss(sr[blk * 32 / G]);
    if constexpr (ZP) z[blk] = float(w.zeros[n * ng + blk * 32 / G]);
  }
  std::fill(q + nb * 32, q + kp, uint8_t(0));
  std::fill(s + nb, s + kp / 32, 0.0f);
  if constexpr (ZP) std::fill(z + nb, z + kp / 32, 0.0f);
}

// y for one decoded weight row and one group of 8 rows of x: out[i] is row i's sum before bias.
template <bool ZP>
void lanes_dot(const uint8_t* q, const float* s, const float* z, const LaneActs& a, int64_t g, float* out) {
  const int8_t* xg = &a.q[size_t(g * a.kp * kLanes)];
  const float* dg = &a.d[size_t(g * a.kb * kLanes)];
  const int32_t* bg = &a.b[size_t(g * a.kb * kLanes)];
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[8];
  for (__m256& v : acc) v = _mm256_setzero_ps();
  auto block = [&](int64_t blk, __m256& acc_lane) {
    const uint8_t* wq = q + blk * 32;
    const int8_t* xb = xg + blk * 32 * kLanes;
    // The block's codes in both 128-bit halves; vpshufd then spreads dword c % 4 over all lanes
    // (cheaper on a Zen 3 than a broadcast load per dword).
    const __m256i w0 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wq)));
    const __m256i w1 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wq + 16)));
    const auto prod = [&](auto c_const) {
      constexpr int c = decltype(c_const)::value;
      const __m256i wd = _mm256_shuffle_epi32(c < 4 ? w0 : w1, (c % 4) * 0x55);
      return _mm256_maddubs_epi16(wd, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 32 * c)));
    };
    // |sum| <= 8 * 2 * 15 * 127 = 30480: fits int16, as in the tiles.
    using std::integral_constant;
    const __m256i t = _mm256_add_epi16(
        _mm256_add_epi16(_mm256_add_epi16(prod(integral_constant<int, 0>{}), prod(integral_constant<int, 1>{})),
                         _mm256_add_epi16(prod(integral_constant<int, 2>{}), prod(integral_constant<int, 3>{}))),
        _mm256_add_epi16(_mm256_add_epi16(prod(integral_constant<int, 4>{}), prod(integral_constant<int, 5>{})),
                         _mm256_add_epi16(prod(integral_constant<int, 6>{}), prod(integral_constant<int, 7>{}))));
    const __m256i bv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bg + blk * kLanes));
    __m256i si = _mm256_madd_epi16(t, ones);
    if constexpr (!ZP) si = _mm256_add_epi32(si, bv);
    __m256 f = _mm256_cvtepi32_ps(si);
    if constexpr (ZP) f = _mm256_fnmadd_ps(_mm256_set1_ps(z[blk]), _mm256_cvtepi32_ps(bv), f);
    acc_lane = _mm256_fmadd_ps(f, _mm256_mul_ps(_mm256_set1_ps(s[blk]), _mm256_loadu_ps(dg + blk * kLanes)), acc_lane);
  };
  for (int64_t b0 = 0; b0 < a.kb; b0 += 8) {
    block(b0 + 0, acc[run_lane(0)]);
    block(b0 + 1, acc[run_lane(1)]);
    block(b0 + 2, acc[run_lane(2)]);
    block(b0 + 3, acc[run_lane(3)]);
    block(b0 + 4, acc[run_lane(4)]);
    block(b0 + 5, acc[run_lane(5)]);
    block(b0 + 6, acc[run_lane(6)]);
    block(b0 + 7, acc[run_lane(7)]);
  }
  // hsum's tree (qgemm_avx2.cpp) lane by lane: (a0 + a4) + (a2 + a6), (a1 + a5) + (a3 + a7), then
  // the two added.
  const __m256 t0 = _mm256_add_ps(acc[0], acc[4]), t1 = _mm256_add_ps(acc[1], acc[5]);
  const __m256 t2 = _mm256_add_ps(acc[2], acc[6]), t3 = _mm256_add_ps(acc[3], acc[7]);
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(t0, t2), _mm256_add_ps(t1, t3)));
}

// Weight rows [n0, n1): a chunk of rows is decoded once (about 64 KiB of codes, in L2), then each
// group of x (in L1) meets the chunk's rows.
template <int G, bool ZP>
void lanes_rows(const Job& job, const LaneActs& a, int64_t n0, int64_t n1) {
  const WeightView& w = job.w;
  const int64_t N = w.rows, M = job.M, kp = a.kp, kb = a.kb;
  const int64_t chunk = std::clamp<int64_t>((int64_t(64) << 10) / kp, 1, n1 - n0);
  std::vector<uint8_t> codes(size_t(chunk * kp));
  std::vector<float> sc(size_t(chunk * kb)), zs(ZP ? size_t(chunk * kb) : 0);
  float out[kLanes];
  for (int64_t nc = n0; nc < n1; nc += chunk) {
    const int64_t ne = std::min(n1, nc + chunk);
    for (int64_t n = nc; n < ne; ++n)
      decode_row<G, ZP>(w, n, kp, &codes[size_t((n - nc) * kp)], &sc[size_t((n - nc) * kb)],
                        ZP ? &zs[size_t((n - nc) * kb)] : nullptr);
    for (int64_t g = 0; g < a.groups; ++g) {
      const int64_t rows = std::min<int64_t>(kLanes, M - g * kLanes);
      for (int64_t n = nc; n < ne; ++n) {
        lanes_dot<ZP>(&codes[size_t((n - nc) * kp)], &sc[size_t((n - nc) * kb)], ZP ? &zs[size_t((n - nc) * kb)] : nullptr,
                      a, g, out);
        const float bias = job.bias ? job.bias[n] : 0.0f;
        for (int64_t r = 0; r < rows; ++r) job.y[(g * kLanes + r) * N + n] = out[r] + bias;
      }
    }
  }
}

template <int G, bool ZP>
std::unique_ptr<Rows> make(const Job& job, LaneActs a) {
  return make_rows([job, a = std::move(a)](int64_t n0, int64_t n1) { lanes_rows<G, ZP>(job, a, n0, n1); });
}

}  // namespace

std::unique_ptr<Rows> q4_lanes_rows(const Job& job, const Acts& nat) {
  const bool zp = job.w.dtype == DType::Q4Z;
  LaneActs a;
  prep_lanes(nat, job.M, job.w.cols, zp, a);
  switch (job.w.group) {
    case 32: return zp ? make<32, true>(job, std::move(a)) : make<32, false>(job, std::move(a));
    case 64: return zp ? make<64, true>(job, std::move(a)) : make<64, false>(job, std::move(a));
    default: return zp ? make<128, true>(job, std::move(a)) : make<128, false>(job, std::move(a));
  }
}

}  // namespace moe::cpu::qk::avx2
