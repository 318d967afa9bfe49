// Fused-dequantization matmul on the GPU for the expert formats of quant/dtype.h:
//   y[M, N] = x[M, K] . W[N, K]^T      (W = w, N = w.rows, K = w.cols)
// Activations fp32, weights decoded in the inner loop (no dequantized copy of W), fp32
// accumulation. Unlike the CPU Q4 kernels (kernels/cpu/qmatmul.h), activations are NOT
// quantized to int8: the result is the fp32 dot product with the dequantized weights.
//
// Formats and shapes:
//   Q4, Q4Z   group 32, 64 or 128; K % group == 0 (so K % 32 == 0); any N.
//   F8E4M3    group 0 (per-row fp32 scales) or 128 (128x128 block scales); any N and K.
//             K % 16 == 0 takes the vectorised path, other K a slow per-element one.
//   I8        group 0 (per-row fp32 scales); K % 16 == 0; any N. One kernel form for every
//             variant (written without a GPU at hand; the FP8 body with an INT8 decoder).
//   MXFP4     group 32 (e8m0 scale bytes [N, K / 32]); K % 32 == 0; any N. One kernel form for
//             every variant (written without a GPU at hand; see qgemv_mx4.cuh).
// M = 1..8: one launch, every weight read once and applied to all M tokens (decode GEMV).
// M > 8: the same kernel over tiles of 8 tokens, so W is read ceil(M / 8) times. That is the
//        simple, untuned GEMM path (correct, not fast); a tensor-core GEMM replaces it later.
//
// Pointers: x, y and everything in w are device pointers; x, w.data and y 16-byte aligned
// (cudaMalloc gives 256). Asynchronous on `stream`. Throws std::invalid_argument for an
// unsupported format, shape or alignment (before launching anything), std::runtime_error
// (kernels/cuda/check.h) when CUDA reports an error.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/device_weight.h"

namespace moe::cuda {

void qgemv(const float* x /*[M, K]*/, int64_t M, const DeviceWeight& w, float* y /*[M, N]*/,
           cudaStream_t stream);

// Tokens per launch of the GEMV kernels (the M tile of the GEMM path).
inline constexpr int kQgemvMaxM = 8;

}  // namespace moe::cuda
