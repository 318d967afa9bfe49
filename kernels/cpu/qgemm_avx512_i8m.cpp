// AVX-512 VNNI I8 GEMM for many rows of x (prefill, batched decode): rows of x in lanes, as
// qgemm_avx512_q4m.cpp does for Q4.
//
// The row kernel of qgemm_avx512_i8f8.cpp feeds vpdpbusd |w| and moves w's sign onto x, three
// vector instructions per 64 products for every (weight row, x row). Here the 16 lanes are 16
// rows of x, stored as unsigned codes xq + 128 (1..255), and 4 signed weight bytes are broadcast
// to all lanes: one vpdpbusd per 64 products. The +128 adds 128 * sum(w) over the block to every
// lane; the accumulator starts at minus that, so the int32 block sums are the exact
// sum q_i xq_i of qmatmul.h and only the fp32 order of the block sums differs.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/qavx512.h"

namespace moe::cpu::qk {

namespace {

constexpr int kLanes = 16;      // rows of x per vector
constexpr int kRowsW = 4;       // weight rows per pass
constexpr int kBlocksPass = 8;  // 16-row blocks of x per pass over the weights (128 rows)

// x in 16-row blocks (rows past M are zero codes, i.e. 128, and scale 0):
//   u [nmb, K/4, 16, 4] uint8: xq + 128 for 4 consecutive columns of the 16 rows in one vector.
//   d [nmb, K/32, 16] f32 block scales.
struct MActs {
  std::vector<uint8_t> u;
  std::vector<float> d;
  int64_t nmb = 0;
};

void prep(const float* x, int64_t M, int64_t K, MActs& a) {
  const int64_t nb = K / 32;
  a.nmb = (M + kLanes - 1) / kLanes;
  a.u.assign(size_t(a.nmb * K * kLanes), 128);
  a.d.assign(size_t(a.nmb * nb * kLanes), 0.0f);
  for (int64_t m = 0; m < M; ++m) {
    const int64_t mb = m / kLanes, l = m % kLanes;
    for (int64_t blk = 0; blk < nb; ++blk) {
      float dr;
      __m512i qa, qb;
      quant_block(x + m * K + blk * 32, &dr, &qa, &qb);
      const __m512i bias = _mm512_set1_epi32(128);
      alignas(32) uint8_t q[32];
      _mm_store_si128(reinterpret_cast<__m128i*>(q), _mm512_cvtepi32_epi8(_mm512_add_epi32(qa, bias)));
      _mm_store_si128(reinterpret_cast<__m128i*>(q + 16), _mm512_cvtepi32_epi8(_mm512_add_epi32(qb, bias)));
      for (int t = 0; t < 8; ++t) std::memcpy(&a.u[size_t(((mb * (K / 4) + blk * 8 + t) * kLanes + l) * 4)], q + 4 * t, 4);
      a.d[size_t((mb * nb + blk) * kLanes + l)] = dr;
    }
  }
}

// Minus 128 times each 32-block's sum of weight codes, for NT rows from n: the accumulators'
// start (see the file comment). c [kRowsW, K/32].
void block_offsets(const WeightView& w, int64_t n, int nt, std::vector<int32_t>& c) {
  const int64_t K = w.cols, nb = K / 32;
  c.resize(size_t(kRowsW * nb));
  for (int j = 0; j < nt; ++j) {
    const int8_t* wr = static_cast<const int8_t*>(w.data) + (n + j) * K;
    for (int64_t b = 0; b < nb; ++b) {
      int32_t s = 0;
      for (int i = 0; i < 32; ++i) s += wr[b * 32 + i];
      c[size_t(j * nb + b)] = -128 * s;
    }
  }
}

// NT weight rows from n against 16-row block mb of x: out[j] lanes = the row's sum over blocks
// of d_b * (int32 block sum), before the row scale.
template <int NT>
void block16(const WeightView& w, int64_t n, const std::vector<int32_t>& c, const MActs& a, int64_t mb, __m512* out) {
  const int64_t K = w.cols, nb = K / 32;
  const uint8_t* xp = &a.u[size_t(mb * K * kLanes)];
  const float* dp = &a.d[size_t(mb * nb * kLanes)];
  const int8_t* wr[NT];
  for (int j = 0; j < NT; ++j) wr[j] = static_cast<const int8_t*>(w.data) + (n + j) * K;
  __m512 acc[NT];
  for (int j = 0; j < NT; ++j) acc[j] = _mm512_setzero_ps();
  for (int64_t blk = 0; blk < nb; ++blk) {
    __m512i xv[8];
    for (int t = 0; t < 8; ++t) xv[t] = _mm512_loadu_si512(xp + t * 64);
    const __m512 d = _mm512_loadu_ps(dp);
    for (int j = 0; j < NT; ++j) {
      __m512i s = _mm512_set1_epi32(c[size_t(j * nb + blk)]);
      for (int t = 0; t < 8; ++t) {
        int32_t w4;
        std::memcpy(&w4, wr[j] + blk * 32 + 4 * t, 4);
        s = _mm512_dpbusd_epi32(s, xv[t], _mm512_set1_epi32(w4));
      }
      acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, acc[j]);
    }
    xp += 8 * 64, dp += kLanes;
  }
  for (int j = 0; j < NT; ++j) out[j] = acc[j];
}

void rows(const Job& job, const MActs& a, int64_t n0, int64_t n1) {
  const WeightView& w = job.w;
  const int64_t N = w.rows, M = job.M;
  const float* scales = static_cast<const float*>(w.scales);
  std::vector<int32_t> c;
  __m512 out[kRowsW];
  alignas(64) float lanes[kLanes];
  for (int64_t mg = 0; mg < a.nmb; mg += kBlocksPass)
    for (int64_t n = n0; n < n1; n += kRowsW) {
      const int nt = int(std::min<int64_t>(kRowsW, n1 - n));
      block_offsets(w, n, nt, c);
      for (int64_t mb = mg; mb < std::min(a.nmb, mg + kBlocksPass); ++mb) {
        switch (nt) {
          case 1: block16<1>(w, n, c, a, mb, out); break;
          case 2: block16<2>(w, n, c, a, mb, out); break;
          case 3: block16<3>(w, n, c, a, mb, out); break;
          default: block16<4>(w, n, c, a, mb, out); break;
        }
        for (int j = 0; j < nt; ++j) {
          _mm512_store_ps(lanes, _mm512_mul_ps(out[j], _mm512_set1_ps(scales[n + j])));
          const float bias = job.bias ? job.bias[n + j] : 0.0f;
          for (int64_t l = 0; l < kLanes && mb * kLanes + l < M; ++l) job.y[(mb * kLanes + l) * N + n + j] = lanes[l] + bias;
        }
      }
    }
}

}  // namespace

std::unique_ptr<Rows> prepare_i8_mlanes(const Job& job) {
  MActs a;
  prep(job.x, job.M, job.w.cols, a);
  return make_rows([job, a = std::move(a)](int64_t n0, int64_t n1) { rows(job, a, n0, n1); });
}

}  // namespace moe::cpu::qk
