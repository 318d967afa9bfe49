// RoPE in place, one thread per rotated pair (rope_pair.h: rotate_half or interleaved pairing,
// over all of a head or its leading rot_dims). cos/sin are computed per pair from the token's
// position rather than read from a table: the sincosf is cheap next to the memory traffic, and
// there is no table to keep in sync.
#include <climits>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/ops_common.cuh"
#include "kernels/cuda/rope_pair.h"

namespace moe::cuda {
namespace {

__global__ void rope_pairs(float* v,                             // [T, heads, head_dim]
                           const int32_t* __restrict__ pos,      // [T]
                           const float* __restrict__ inv_freq,   // [rot_dims / 2]
                           int64_t pairs, int heads, int head_dim, int rot_dims, bool interleaved, float af) {
  const int half = rot_dims / 2;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < pairs; i += int64_t(gridDim.x) * blockDim.x) {
    const int p = int(i % half);
    const int64_t th = i / half;  // t * heads + head
    const int64_t t = th / heads;
    float* h = v + th * head_dim;
    const RopePair at = rope_pair(p, rot_dims, interleaved);
    // Same fp32 angle as runtime/engine_attention.cpp; sincosf is the accurate one (full range
    // reduction, positions reach 1e5 radians), not the __sincosf intrinsic.
    float s, c;
    sincosf(float(pos[t]) * inv_freq[p], &s, &c);
    c *= af;
    s *= af;
    const float a = h[at.a], b = h[at.b];
    // Explicit roundings: no FMA contraction, so each product rounds as in cpu::rope.
    h[at.a] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    h[at.b] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
  }
}

}  // namespace

void rope(float* v, const int32_t* pos, const float* inv_freq, int64_t T, int heads, const RopeLayout& layout,
          float attention_factor, cudaStream_t stream) {
  using ops_detail::require;
  require(T >= 0 && heads >= 0, "rope", "negative shape");
  if (!ops_detail::check_rope_layout(layout, "rope")) return;
  const int64_t pairs = T * heads * (layout.rot_dims / 2);
  if (pairs == 0) return;
  require(v && pos && inv_freq, "rope", "null pointer");
  rope_pairs<<<ops_detail::grid_stride_blocks(pairs), ops_detail::kThreads, 0, stream>>>(
      v, pos, inv_freq, pairs, heads, layout.head_dim, layout.rot_dims, layout.interleaved, attention_factor);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
