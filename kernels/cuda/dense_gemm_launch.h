// Internal to dense_gemm: the activation-narrowing launcher (dense_convert.cu).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "quant/dtype.h"

namespace moe::cuda::detail {

// out[n] = x[n] rounded to `to` (BF16 or F16, nearest-even); asynchronous on `stream`.
void launch_narrow(const float* x /*[n]*/, int64_t n, DType to, void* out /*[n] 2-byte values*/, cudaStream_t stream);

}  // namespace moe::cuda::detail
