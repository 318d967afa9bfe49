// MLA's absorbed projections and attention (mla.h).
#include "kernels/cuda/warp.cuh"
#include <cuda_runtime.h>

#include <cmath>
#include <string>

#include "kernels/cuda/attention_launch.h"  // first_key
#include "kernels/cuda/check.h"
#include "kernels/cuda/mla.h"
#include "kernels/cuda/ops_common.cuh"

namespace moe::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kPerLane = kMlaMaxLatent / 32;  // latent columns a lane holds

__global__ void __launch_bounds__(32 * kWarps)
    head_matvec_kernel(const float* __restrict__ W, int heads, int rows, int cols, const float* __restrict__ in,
                       int64_t ts, int64_t hs, int64_t outputs, float* __restrict__ out) {
  const int64_t o = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;  // (t, h, i), i fastest
  if (o >= outputs) return;  // whole warp
  const int lane = threadIdx.x % 32;
  const int i = int(o % rows);
  const int64_t th = o / rows, t = th / heads, h = th % heads;
  const float* w = W + (h * rows + i) * int64_t(cols);
  const float* x = in + t * ts + h * hs;
  float s = 0.0f;
  for (int j = lane; j < cols; j += 32) s = fmaf(w[j], x[j], s);
  s = warp_sum(s);
  if (lane == 0) out[o] = s;
}

// Grid (token, head), kWarps warps: warp w takes keys first + w, first + w + kWarps, ... with its
// own running max m, sum l and weighted latent (lane l: columns l, l + 32, ...); the warps merge
// through shared memory at the end.
__global__ void __launch_bounds__(32 * kWarps) mla_attention_kernel(MlaBatch b) {
  const int t = blockIdx.x, h = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int R = b.latent, row = R + b.rope;
  const int pos = b.pos[t], first = detail::first_key(pos, b.window);
  const float* ql = b.q_latent + (int64_t(t) * b.n_heads + h) * R;
  const float* qr = b.q_rope + int64_t(t) * b.q_token_stride + int64_t(h) * b.q_head_stride;
  const float* cache = b.cache[t];

  float qv[kPerLane], acc[kPerLane];
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    qv[i] = lane + 32 * i < R ? ql[lane + 32 * i] : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int s = first + warp; s <= pos; s += kWarps) {
    const float* c = cache + int64_t(s) * row;
    float cv[kPerLane];
    float dot = 0.0f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      cv[i] = lane + 32 * i < R ? c[lane + 32 * i] : 0.0f;
      dot = fmaf(qv[i], cv[i], dot);
    }
    for (int d = lane; d < b.rope; d += 32) dot = fmaf(qr[d], c[R + d], dot);
    const float sc = warp_sum(dot) * b.scale;
    const float mn = fmaxf(m, sc), corr = expf(m - mn), pr = expf(sc - mn);  // corr 0 on the first key
    l = l * corr + pr;
    m = mn;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) acc[i] = fmaf(pr, cv[i], acc[i] * corr);
  }

  __shared__ float sm[kWarps], sl[kWarps];
  __shared__ float sacc[kWarps][kMlaMaxLatent];
  if (lane == 0) sm[warp] = m, sl[warp] = l;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i)
    if (lane + 32 * i < R) sacc[warp][lane + 32 * i] = acc[i];
  __syncthreads();
  // Warp 0 always has the query's own key, so M is finite; a warp without keys weighs 0.
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sm[w]);
  float L = 0.0f, f[kWarps];
  for (int w = 0; w < kWarps; ++w) L += (f[w] = expf(sm[w] - M)) * sl[w];
  float* out = b.out + (int64_t(t) * b.n_heads + h) * R;
  for (int d = threadIdx.x; d < R; d += 32 * kWarps) {
    float o = 0.0f;
    for (int w = 0; w < kWarps; ++w) o = fmaf(f[w], sacc[w][d], o);
    out[d] = o / L;
  }
}

}  // namespace

void head_matvec(const float* W, int heads, int rows, int cols, const float* in, int64_t in_token_stride,
                 int64_t in_head_stride, int64_t T, float* out, cudaStream_t stream) {
  using ops_detail::require;
  require(heads >= 0 && rows >= 0 && cols >= 0 && T >= 0, "head_matvec", "negative shape");
  const int64_t outputs = T * heads * int64_t(rows);
  if (outputs == 0) return;
  require(W && in && out, "head_matvec", "null pointer");
  const int64_t blocks = (outputs + kWarps - 1) / kWarps;
  require(blocks <= 0x7fffffff, "head_matvec", "too many outputs for one launch");
  head_matvec_kernel<<<unsigned(blocks), 32 * kWarps, 0, stream>>>(W, heads, rows, cols, in, in_token_stride,
                                                                    in_head_stride, outputs, out);
  MOE_CUDA_CHECK_LAUNCH();
}

void mla_attention(const MlaBatch& b, cudaStream_t stream) {
  using ops_detail::require;
  require(b.T >= 0 && b.n_heads >= 0 && b.rope >= 0 && b.window >= 0, "mla_attention", "negative shape");
  require(b.latent > 0 && b.latent <= kMlaMaxLatent, "mla_attention",
          "kv_lora_rank must be in 1.." + std::to_string(kMlaMaxLatent) + ", got " + std::to_string(b.latent));
  require(b.scale > 0.0f, "mla_attention", "scale must be > 0");
  require(b.n_heads <= 65535, "mla_attention", "n_heads must be <= 65535 (a grid dimension)");
  if (b.T == 0 || b.n_heads == 0) return;
  require(b.q_latent && b.q_rope && b.cache && b.pos && b.out, "mla_attention", "null pointer");
  mla_attention_kernel<<<dim3(unsigned(b.T), unsigned(b.n_heads)), 32 * kWarps, 0, stream>>>(b);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
