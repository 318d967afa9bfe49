// RoPE in place, HF rotate_half pairing (i, i + head_dim / 2), one thread per pair.
// cos/sin are computed per pair from the token's position rather than read from a table: the
// sincosf is cheap next to the memory traffic, and there is no table to keep in sync.
#include <climits>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/ops_common.cuh"

namespace moe::cuda {
namespace {

__global__ void rope_pairs(float* v,                             // [T, heads, 2 * half]
                           const int32_t* __restrict__ pos,      // [T]
                           const float* __restrict__ inv_freq,   // [half]
                           int64_t pairs, int heads, int half, float af) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < pairs; i += int64_t(gridDim.x) * blockDim.x) {
    const int p = int(i % half);
    const int64_t th = i / half;  // t * heads + head
    const int64_t t = th / heads;
    float* h = v + th * 2 * half;
    // Same fp32 angle as runtime/engine_attention.cpp; sincosf is the accurate one (full range
    // reduction, positions reach 1e5 radians), not the __sincosf intrinsic.
    float s, c;
    sincosf(float(pos[t]) * inv_freq[p], &s, &c);
    c *= af;
    s *= af;
    const float a = h[p], b = h[p + half];
    // Explicit roundings: no FMA contraction, so each product rounds as in cpu::rope.
    h[p] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    h[p + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
  }
}

}  // namespace

void rope(float* v, const int32_t* pos, const float* inv_freq, int64_t T, int heads, int head_dim,
          float attention_factor, cudaStream_t stream) {
  using ops_detail::require;
  require(T >= 0 && heads >= 0 && head_dim >= 0, "rope", "negative shape");
  require(head_dim % 2 == 0, "rope", "head_dim must be even, got " + std::to_string(head_dim));
  const int64_t pairs = T * heads * (head_dim / 2);
  if (pairs == 0) return;
  require(v && pos && inv_freq, "rope", "null pointer");
  rope_pairs<<<ops_detail::grid_stride_blocks(pairs), ops_detail::kThreads, 0, stream>>>(v, pos, inv_freq, pairs, heads,
                                                                                          head_dim / 2, attention_factor);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
