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

// From this many rows of x on, Q4 and Q4Z put 8 rows of x in the vector lanes
// (qgemm_avx2_q4m.cpp); fewer run qgemm_avx2.cpp's tiles. Both give a row the same bits.
constexpr int64_t kLanesMinRows = 8;
std::unique_ptr<Rows> q4_lanes_rows(const Job& job, const Acts& a);

}  // namespace moe::cpu::qk::avx2
