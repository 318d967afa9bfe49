// Engine glue kernels (moe_ops.h). All are memory-bound grid-stride loops over the output,
// consecutive threads on consecutive floats of a row (coalesced).
#include "kernels/cuda/check.h"
#include "kernels/cuda/moe_ops.h"
#include "kernels/cuda/ops_common.cuh"

namespace moe::cuda {
namespace {

#define MOE_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__global__ void add_bias_kernel(float* __restrict__ x, const float* __restrict__ b, int64_t total, int64_t n) {
  MOE_GRID_STRIDE(i, total) x[i] += b[i % n];
}

__global__ void clamp_kernel(float* x, int64_t n, float lim) {
  MOE_GRID_STRIDE(i, n) x[i] = fminf(fmaxf(x[i], -lim), lim);
}

__global__ void gather_kernel(const float* __restrict__ src, const int32_t* __restrict__ idx, int64_t total, int64_t n,
                              float* __restrict__ dst) {
  MOE_GRID_STRIDE(i, total) dst[i] = src[int64_t(idx[i / n]) * n + i % n];
}

__global__ void combine_kernel(const float* __restrict__ y, const int32_t* __restrict__ y_row,
                               const float* __restrict__ w, int64_t total, int k, int64_t n, float* __restrict__ out) {
  MOE_GRID_STRIDE(i, total) {
    const int64_t t = i / n, d = i % n;
    float s = 0.0f;
    for (int j = 0; j < k; ++j) s = fmaf(w[t * k + j], y[int64_t(y_row[t * k + j]) * n + d], s);
    out[i] = s;
  }
}

__global__ void add_gated_kernel(float* __restrict__ out, const float* __restrict__ s, const float* __restrict__ g,
                                 int64_t total, int64_t n) {
  MOE_GRID_STRIDE(i, total) {
    const float gate = g ? 1.0f / (1.0f + expf(-g[i / n])) : 1.0f;
    out[i] += gate * s[i];
  }
}

// Row i of k / v (kvd floats) to row lengths[i] - 1 of sequence i's cache, for the layer's tables.
__global__ void append_kv_kernel(float* const* __restrict__ kc, float* const* __restrict__ vc,
                                 const int32_t* __restrict__ lengths, const float* __restrict__ k,
                                 const float* __restrict__ v, int64_t total, int64_t kvd) {
  MOE_GRID_STRIDE(i, total) {
    const int64_t s = i / kvd, d = i % kvd, at = int64_t(lengths[s] - 1) * kvd + d;
    kc[s][at] = k[i];
    if (vc) vc[s][at] = v[i];
  }
}

#undef MOE_GRID_STRIDE

using ops_detail::grid_stride_blocks;
using ops_detail::kThreads;
using ops_detail::require;

}  // namespace

void add_bias(float* x, const float* b, int64_t rows, int64_t n, cudaStream_t stream) {
  require(rows >= 0 && n > 0, "add_bias", "rows >= 0 and n > 0 needed");
  if (rows == 0) return;
  require(x && b, "add_bias", "null pointer");
  add_bias_kernel<<<grid_stride_blocks(rows * n), kThreads, 0, stream>>>(x, b, rows * n, n);
  MOE_CUDA_CHECK_LAUNCH();
}

void clamp(float* x, int64_t n, float lim, cudaStream_t stream) {
  require(n >= 0 && lim > 0, "clamp", "n >= 0 and lim > 0 needed");
  if (n == 0) return;
  require(x, "clamp", "null pointer");
  clamp_kernel<<<grid_stride_blocks(n), kThreads, 0, stream>>>(x, n, lim);
  MOE_CUDA_CHECK_LAUNCH();
}

void gather_rows(const float* src, const int32_t* idx, int64_t rows, int64_t n, float* dst, cudaStream_t stream) {
  require(rows >= 0 && n > 0, "gather_rows", "rows >= 0 and n > 0 needed");
  if (rows == 0) return;
  require(src && idx && dst, "gather_rows", "null pointer");
  gather_kernel<<<grid_stride_blocks(rows * n), kThreads, 0, stream>>>(src, idx, rows * n, n, dst);
  MOE_CUDA_CHECK_LAUNCH();
}

void moe_combine(const float* y, const int32_t* y_row, const float* w, int64_t T, int k, int64_t n, float* out,
                 cudaStream_t stream) {
  require(T >= 0 && k > 0 && n > 0, "moe_combine", "T >= 0, k > 0 and n > 0 needed");
  if (T == 0) return;
  require(y && y_row && w && out, "moe_combine", "null pointer");
  combine_kernel<<<grid_stride_blocks(T * n), kThreads, 0, stream>>>(y, y_row, w, T * n, k, n, out);
  MOE_CUDA_CHECK_LAUNCH();
}

void append_kv_decode(float* const* k_cache, float* const* v_cache, const int32_t* lengths, const float* k,
                      const float* v, int n, int64_t kvd, cudaStream_t stream) {
  require(n >= 0 && kvd > 0, "append_kv_decode", "n >= 0 and kvd > 0 needed");
  if (n == 0) return;
  require(k_cache && lengths && k && (v_cache == nullptr) == (v == nullptr), "append_kv_decode",
          "null pointer (v_cache and v are null together, for an MLA cache, or both set)");
  append_kv_kernel<<<grid_stride_blocks(int64_t(n) * kvd), kThreads, 0, stream>>>(k_cache, v_cache, lengths, k, v,
                                                                                   int64_t(n) * kvd, kvd);
  MOE_CUDA_CHECK_LAUNCH();
}

void add_gated(float* out, const float* s, const float* gate_logit, int64_t T, int64_t n, cudaStream_t stream) {
  require(T >= 0 && n > 0, "add_gated", "T >= 0 and n > 0 needed");
  if (T == 0) return;
  require(out && s, "add_gated", "null pointer");
  add_gated_kernel<<<grid_stride_blocks(T * n), kThreads, 0, stream>>>(out, s, gate_logit, T * n, n);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
