// MoE router: softmax over each token's E logits, then top-k with optional renormalisation,
// the semantics of runtime/engine_ffn.cpp with cpu::softmax and cpu::topk.
// One warp per token: E is tens to a few hundred, so a warp's lanes cover the logits in a few
// strided steps and k rounds of a warp arg-max pick the experts without any block barrier.
#include <climits>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/ops_common.cuh"

namespace moe::cuda {
namespace {

using ops_detail::warp_max;
using ops_detail::warp_sum;

constexpr int kWarps = 4;  // tokens per block

// (v, i) beats (bv, bi) when larger, or equal with a lower index: cpu::topk's order.
__device__ __forceinline__ bool beats(float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); }

__global__ void __launch_bounds__(32 * kWarps)
    router_kernel(const float* __restrict__ logits,  // [T, E]
                  int64_t T, int E, int k, bool renorm,
                  int32_t* __restrict__ ids,         // [T, k]
                  float* __restrict__ weights) {     // [T, k]
  extern __shared__ float probs[];                   // [kWarps, E]
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t t = int64_t(blockIdx.x) * kWarps + warp;
  if (t >= T) return;  // the whole warp; only warp-level syncs follow
  float* p = probs + warp * E;
  const float* x = logits + t * E;

  // cpu::softmax: subtract the max, exponentiate, multiply by 1 / sum.
  float mx = -INFINITY;
  for (int e = lane; e < E; e += 32) mx = fmaxf(mx, p[e] = x[e]);
  mx = warp_max(mx);
  float s = 0.0f;
  for (int e = lane; e < E; e += 32) s += (p[e] = expf(p[e] - mx));
  const float inv = 1.0f / warp_sum(s);
  for (int e = lane; e < E; e += 32) p[e] *= inv;
  __syncwarp();

  // k rounds of arg-max; a chosen expert is marked -1 (probabilities are >= 0). A NaN counts as
  // -0.5: below every real probability, above the mark, so ids stay distinct and in range.
  int my_id = 0;
  float my_p = 0.0f;
  for (int j = 0; j < k; ++j) {
    float bv = -2.0f;
    int bi = INT_MAX;
    for (int e = lane; e < E; e += 32) {
      const float v = p[e] == p[e] ? p[e] : -0.5f;
      if (beats(v, e, bv, bi)) bv = v, bi = e;
    }
#pragma unroll
    for (int off = 16; off > 0; off /= 2) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, off);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, off);
      if (beats(ov, oi, bv, bi)) bv = ov, bi = oi;
    }
    // Every lane holds the same (bv, bi); bi < E because k <= E leaves an unmarked entry.
    if (lane == j) my_id = bi, my_p = p[bi];
    __syncwarp();  // lane j's read of p[bi] before lane 0 marks it
    if (lane == 0) p[bi] = -1.0f;
    __syncwarp();
  }

  // Lane j < k holds choice j.
  const float total = warp_sum(lane < k ? my_p : 0.0f);
  if (lane < k) {
    ids[t * k + lane] = my_id;
    weights[t * k + lane] = renorm ? my_p / total : my_p;
  }
}

}  // namespace

void router_topk(const float* logits, int64_t T, int E, int k, bool norm_topk_prob, int32_t* ids, float* weights,
                 cudaStream_t stream) {
  using ops_detail::require;
  require(T >= 0, "router_topk", "negative token count");
  require(E >= 1 && E <= kRouterMaxExperts, "router_topk",
          "E = " + std::to_string(E) + " experts, supported 1.." + std::to_string(kRouterMaxExperts));
  require(k >= 1 && k <= E && k <= kRouterMaxK, "router_topk",
          "k = " + std::to_string(k) + " must be in 1..min(E, " + std::to_string(kRouterMaxK) + ")");
  require(T <= int64_t(INT_MAX) * kWarps, "router_topk", "too many tokens");
  if (T == 0) return;
  require(logits && ids && weights, "router_topk", "null pointer");
  const unsigned blocks = unsigned((T + kWarps - 1) / kWarps);
  const size_t smem = size_t(kWarps) * size_t(E) * sizeof(float);  // <= 32 KiB, under the 48 KiB default
  router_kernel<<<blocks, 32 * kWarps, smem, stream>>>(logits, T, E, k, norm_topk_prob, ids, weights);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
