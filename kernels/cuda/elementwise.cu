// Element-wise ops over flat arrays: SwiGLU's silu(gate) * up, and the residual add.
// Grid-stride loops of scalar loads: consecutive threads read consecutive floats, so each warp
// access is one coalesced 128-byte transaction; both ops are bound by memory bandwidth.
#include "kernels/cuda/check.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/ops_common.cuh"
#include "kernels/cuda/swiglu.h"

namespace moe::cuda {
namespace {

// No __restrict__ on out: the engine runs silu_mul in place (out == gate).
__global__ void silu_mul_kernel(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];  // cpu::silu_mul's formula and order
  }
}

__global__ void clamped_swiglu_kernel(const float* gate, const float* up, int64_t n, float limit, float alpha,
                                      float* out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = clamped_swiglu_one(gate[i], up[i], limit, alpha);
}

__global__ void add_kernel(float* __restrict__ x, const float* __restrict__ y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

}  // namespace

void silu_mul(const float* gate, const float* up, int64_t n, float* out, cudaStream_t stream) {
  ops_detail::require(n >= 0, "silu_mul", "negative n");
  if (n == 0) return;
  ops_detail::require(gate && up && out, "silu_mul", "null pointer");
  silu_mul_kernel<<<ops_detail::grid_stride_blocks(n), ops_detail::kThreads, 0, stream>>>(gate, up, n, out);
  MOE_CUDA_CHECK_LAUNCH();
}

void clamped_swiglu(const float* gate, const float* up, int64_t n, float limit, float alpha, float* out,
                    cudaStream_t stream) {
  ops_detail::require(n >= 0, "clamped_swiglu", "negative n");
  ops_detail::require(limit > 0.0f && alpha > 0.0f, "clamped_swiglu", "limit and alpha must be > 0");
  if (n == 0) return;
  ops_detail::require(gate && up && out, "clamped_swiglu", "null pointer");
  clamped_swiglu_kernel<<<ops_detail::grid_stride_blocks(n), ops_detail::kThreads, 0, stream>>>(gate, up, n, limit,
                                                                                                 alpha, out);
  MOE_CUDA_CHECK_LAUNCH();
}

void add_inplace(float* x, const float* y, int64_t n, cudaStream_t stream) {
  ops_detail::require(n >= 0, "add_inplace", "negative n");
  if (n == 0) return;
  ops_detail::require(x && y, "add_inplace", "null pointer");
  add_kernel<<<ops_detail::grid_stride_blocks(n), ops_detail::kThreads, 0, stream>>>(x, y, n);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
