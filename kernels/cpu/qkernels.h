// Internal to kernels/cpu: what the quantized-matmul variants (qgemm_*.cpp) share.
// Semantics are documented in qmatmul.h.
#pragma once
#include <cstdint>

#include "kernels/cpu/thread_pool.h"
#include "quant/weight_view.h"

namespace moe::cpu::qk {

// One call's operands. x: [M, K], y: [M, N], bias: [N] or nullptr.
struct Job {
  const float* x;
  int64_t M;
  WeightView w;
  float* y;
  const float* bias;
};

// The one definition of the per-32-block activation scale: returns the multiplier that maps
// the block to [-127, 127] (0 for an all-zero block) and stores the dequantization step in *d.
// SIMD variants compute amax (exact) with vectors and then call this, so the int8 codes agree.
inline float act_inv_scale(float amax, float* d) {
  *d = amax / 127.0f;
  return amax != 0.0f ? 127.0f / amax : 0.0f;
}

// Grain of the row split: small matrices stay on one thread.
inline int64_t row_grain(int64_t K) { return K >= 16384 ? 1 : 16384 / K; }

void run_scalar(ThreadPool& pool, const Job& job);
void run_avx2(ThreadPool& pool, const Job& job);
void run_avx512(ThreadPool& pool, const Job& job);

}  // namespace moe::cpu::qk
