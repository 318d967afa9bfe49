// Internal to kernels/cpu: what the AVX2 quantized-matmul files (qgemm_avx2*.cpp) share. Only
// files compiled with AVX2 flags include it.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cpu/qkernels.h"

namespace moe::cpu::qk::avx2 {

// Activations of one call in natural column order: q [M, K] int8; d [M, K/32] block scales.
struct Acts {
  std::vector<int8_t> q;
  std::vector<float> d;
};
void prep(const float* x, int64_t M, int64_t K, Acts& a);

// The Q4 kernels' lane of run r (0..7) of a quad of 8 blocks: runs 0, 2, 4, 6 in lanes 0..3, runs
// 1, 3, 5, 7 in 4..7 (the tiles' pair p holds runs 2p and 2p + 1 in its two 128-bit halves). The
// rows-in-lanes kernel keeps the same lanes, so that both add a row's runs in one order.
constexpr int run_lane(int r) { return (r % 2) * 4 + r / 2; }

// The integer term a block of 32 activation codes adds to its dot product with Q4 / Q4Z codes:
// Q4 subtracts 8 from each code (sum (q - 8) x = sum q x - 8 sum x), Q4Z its zero point times the
// sum (applied in float by the kernels), so the sum is stored as -8 * sum or as is.
inline int32_t code_sum_term(const int8_t* block, bool zp) {
  int32_t sum = 0;
  for (int t = 0; t < 32; ++t) sum += block[t];
  return zp ? sum : -8 * sum;
}

// From this many rows of x on, Q4 and Q4Z put 8 rows of x in the vector lanes
// (qgemm_avx2_q4m.cpp); fewer run qgemm_avx2.cpp's tiles. Both give a row the same bits.
constexpr int64_t kLanesMinRows = 8;
std::unique_ptr<Rows> q4_lanes_rows(const Job& job, const Acts& a);

}  // namespace moe::cpu::qk::avx2
