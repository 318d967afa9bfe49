// MoE routers: cpu::route_ex's rules (ops.h: RouterRule), the plain one (softmax, top-k, optional
// renormalisation: runtime/engine_ffn.cpp with cpu::softmax and cpu::topk) among them.
// One warp per token: E is tens to a few hundred, so a warp's lanes cover the logits in a few
// strided steps and k rounds of a warp arg-max pick the experts without any block barrier.
#include <algorithm>
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

// The best (value, index) over the warp: every lane returns the same pair.
__device__ __forceinline__ void warp_best(float& bv, int& bi) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, off);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, off);
    if (beats(ov, oi, bv, bi)) bv = ov, bi = oi;
  }
}

// Per token (one warp): scores into shared memory, the group limit as a mask, k rounds of a warp
// arg-max over the choice values (chosen experts leave through a per-lane bit mask), weights.
__global__ void __launch_bounds__(32 * kWarps)
    router_kernel(const float* __restrict__ logits,  // [T, E]
                  int64_t T, int E, int k, RouterRule r,
                  int32_t* __restrict__ ids,         // [T, k]
                  float* __restrict__ weights) {     // [T, k]
  extern __shared__ float probs[];                   // [kWarps, E]: the scores
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t t = int64_t(blockIdx.x) * kWarps + warp;
  if (t >= T) return;  // the whole warp; only warp-level syncs follow
  float* p = probs + warp * E;
  const float* x = logits + t * E;

  if (r.softmax_after_topk) {  // the logits themselves; the softmax comes after the choice
    for (int e = lane; e < E; e += 32) p[e] = x[e];
  } else if (r.sigmoid) {
    for (int e = lane; e < E; e += 32) p[e] = 1.0f / (1.0f + expf(-x[e]));
  } else {  // cpu::softmax: subtract the max, exponentiate, multiply by 1 / sum
    float mx = -INFINITY;
    for (int e = lane; e < E; e += 32) mx = fmaxf(mx, p[e] = x[e]);
    mx = warp_max(mx);
    float s = 0.0f;
    for (int e = lane; e < E; e += 32) s += (p[e] = expf(p[e] - mx));
    const float inv = 1.0f / warp_sum(s);
    for (int e = lane; e < E; e += 32) p[e] *= inv;
  }
  __syncwarp();
  const auto choice = [&](int e) { return r.bias ? p[e] + r.bias[e] : p[e]; };

  // Group limit: lane g scores group g (its best, or its two best summed, ties to the lower
  // index as cpu::topk), then topk_groups rounds of arg-max keep the best groups.
  const int G = r.n_groups > 1 ? r.n_groups : 1, per = E / G;
  uint32_t keep = 0xffffffffu;
  if (G > 1) {
    float gs = -INFINITY;
    if (lane < G) {
      float b1 = -INFINITY, b2 = -INFINITY;
      int i1 = INT_MAX, i2 = INT_MAX;
      for (int i = 0; i < per; ++i) {
        const float v = choice(lane * per + i);
        if (beats(v, i, b1, i1)) b2 = b1, i2 = i1, b1 = v, i1 = i;
        else if (beats(v, i, b2, i2)) b2 = v, i2 = i;
      }
      gs = r.group_top2_sum ? b1 + b2 : b1;
    }
    keep = 0;
    for (int j = 0; j < r.topk_groups; ++j) {
      float bv = lane < G && !(keep >> lane & 1u) ? (gs == gs ? gs : -INFINITY) : -INFINITY;
      int bi = lane < G && !(keep >> lane & 1u) ? lane : INT_MAX;
      warp_best(bv, bi);
      keep |= 1u << bi;
    }
  }
  const float excluded = r.sigmoid ? -INFINITY : 0.0f;  // as cpu::route_ex

  // k rounds of arg-max; lane j keeps choice j. A NaN ranks as -inf (below every number, ties to
  // the lower index), so ids stay distinct and in range.
  uint64_t taken = 0;  // bit i: expert lane + 32 i chosen
  int my_id = 0;
  float my_p = 0.0f;
  for (int j = 0; j < k; ++j) {
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int e = lane, i = 0; e < E; e += 32, ++i) {
      if (taken >> i & 1u) continue;
      float v = G > 1 && !(keep >> (e / per) & 1u) ? excluded : choice(e);
      if (v != v) v = -INFINITY;
      if (beats(v, e, bv, bi)) bv = v, bi = e;
    }
    warp_best(bv, bi);
    // Every lane holds the same (bv, bi); bi < E because k <= E leaves an untaken expert.
    if (bi % 32 == lane) taken |= uint64_t(1) << (bi / 32);
    if (lane == j) my_id = bi, my_p = p[bi];
  }

  float w;
  if (r.softmax_after_topk) {  // cpu::softmax over the k chosen logits, summed in their order
    float mx = -INFINITY, s = 0.0f;
    for (int j = 0; j < k; ++j) mx = fmaxf(mx, __shfl_sync(0xffffffffu, my_p, j));
    const float ex = expf(my_p - mx);
    for (int j = 0; j < k; ++j) s += __shfl_sync(0xffffffffu, ex, j);
    w = ex * (1.0f / s);
  } else {
    const float total = warp_sum(lane < k ? my_p : 0.0f);
    const float denom = r.sigmoid ? total + 1e-20f : total;
    w = r.renorm ? my_p / denom : my_p;
  }
  if (lane < k) {
    ids[t * k + lane] = my_id;
    weights[t * k + lane] = w * r.scale;
  }
}

}  // namespace

std::string router_unsupported(int E, int k, const RouterRule& rule) {
  if (E < 1 || E > kRouterMaxExperts)
    return "E = " + std::to_string(E) + " experts, supported 1.." + std::to_string(kRouterMaxExperts);
  if (k < 1 || k > E || k > kRouterMaxK)
    return "k = " + std::to_string(k) + " must be in 1..min(E, " + std::to_string(kRouterMaxK) + ")";
  const int G = std::max(1, rule.n_groups);
  if (G > kRouterMaxGroups || E % G != 0 || rule.topk_groups < 1 || rule.topk_groups > G)
    return std::to_string(G) + " groups of " + std::to_string(E) + " experts, keeping " +
           std::to_string(rule.topk_groups) + ": groups must divide E, be at most " + std::to_string(kRouterMaxGroups) +
           " and keep 1..groups";
  if (G > 1 && rule.topk_groups * (E / G) < k) return "the kept groups hold fewer than k experts";
  return "";
}

void router_route(const float* logits, int64_t T, int E, int k, const RouterRule& rule, int32_t* ids, float* weights,
                  cudaStream_t stream) {
  using ops_detail::require;
  require(T >= 0, "router_route", "negative token count");
  const std::string why = router_unsupported(E, k, rule);
  require(why.empty(), "router_route", why);
  require(T <= int64_t(INT_MAX) * kWarps, "router_route", "too many tokens");
  if (T == 0) return;
  require(logits && ids && weights, "router_route", "null pointer");
  const unsigned blocks = unsigned((T + kWarps - 1) / kWarps);
  const size_t smem = size_t(kWarps) * size_t(E) * sizeof(float);  // <= 32 KiB, under the 48 KiB default
  router_kernel<<<blocks, 32 * kWarps, smem, stream>>>(logits, T, E, k, rule, ids, weights);
  MOE_CUDA_CHECK_LAUNCH();
}

void router_topk(const float* logits, int64_t T, int E, int k, bool norm_topk_prob, int32_t* ids, float* weights,
                 cudaStream_t stream) {
  RouterRule plain;
  plain.renorm = norm_topk_prob;
  router_route(logits, T, E, k, plain, ids, weights, stream);
}

}  // namespace moe::cuda
