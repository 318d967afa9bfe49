// RMSNorm over rows, plain or fused with the residual add before it (one kernel, two
// instantiations). One block per row: a row is at most a few thousand floats, so one block
// reduces it without a second launch, and T (or T * heads for QK-norm) rows fill the GPU.
#include <algorithm>
#include <climits>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/ops_common.cuh"

namespace moe::cuda {
namespace {

using ops_detail::block_sum;
using ops_detail::require;

// Pass 1 sums the squares (and, when kAdd, stores x + y), pass 2 scales. Each thread touches
// the same columns in both passes, so out == x is safe and pass 2 sees its own stores; the
// second read of x comes from L1/L2.
template <bool kAdd>
__global__ void rmsnorm_rows(float* x,                        // [rows, n] (written only when kAdd)
                             const float* __restrict__ y,     // [rows, n] (kAdd only)
                             const float* __restrict__ w,     // [n]
                             int n, float eps,
                             float* out) {                    // [rows, n]
  const int64_t base = int64_t(blockIdx.x) * n;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float v = x[base + i];
    if constexpr (kAdd) {
      v += y[base + i];
      x[base + i] = v;
    }
    ss = fmaf(v, v, ss);
  }
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(n) + eps);  // IEEE sqrt and division (no fast math)
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[base + i] = x[base + i] * inv * w[i];
}

void launch(const char* op, bool add, float* x, const float* y, const float* w, float eps, int64_t rows, int64_t n, float* out,
            cudaStream_t stream) {
  require(rows >= 0 && n >= 0, op, "negative shape [" + std::to_string(rows) + ", " + std::to_string(n) + "]");
  require(rows <= INT_MAX && n <= INT_MAX, op, "rows and n must each fit in 31 bits");
  if (rows == 0 || n == 0) return;
  require(x && w && out && (y || !add), op, "null pointer");
  const int threads = ops_detail::norm_threads(n);
  if (add) rmsnorm_rows<true><<<unsigned(rows), threads, 0, stream>>>(x, y, w, int(n), eps, out);
  else rmsnorm_rows<false><<<unsigned(rows), threads, 0, stream>>>(x, nullptr, w, int(n), eps, out);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void rmsnorm(const float* x, const float* w, float eps, int64_t rows, int64_t n, float* out, cudaStream_t stream) {
  // The kernel writes x only in its kAdd instantiation; this one reads it.
  launch("rmsnorm", false, const_cast<float*>(x), nullptr, w, eps, rows, n, out, stream);
}

void add_rmsnorm(float* x, const float* y, const float* w, float eps, int64_t rows, int64_t n, float* out,
                 cudaStream_t stream) {
  launch("add_rmsnorm", true, x, y, w, eps, rows, n, out, stream);
}

}  // namespace moe::cuda
