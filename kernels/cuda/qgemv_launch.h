// Internal: the per-format launchers behind qgemv() (qgemv.cpp validates arguments and tiles M).
// Each takes 1 <= M <= kQgemvMaxM tokens and a validated weight.
#pragma once
#include <cuda_runtime_api.h>

#include "kernels/cuda/device_weight.h"
#include "kernels/cuda/qgemv.h"
#include "kernels/cuda/qgemv_variant.h"

namespace moe::cuda::detail {

// Format, group, shape limits and pointers of a weight (not alignment): throws
// std::invalid_argument("<who>: ...") naming the weight (qgemv.cpp; qgemv_grouped.cpp uses it too).
void check_weight(const char* who, const DeviceWeight& w);

// Q4 and Q4Z (qgemv_q4.cu).
void launch_q4(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream);
// F8E4M3, per-row or 128x128 block scales (qgemv_f8.cu).
void launch_f8(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream);

// INT8, per-row fp32 scales, K % 16 == 0 (qgemv_i8.cu): every variant runs this one.
void launch_i8(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream);
// MXFP4, e8m0 scales per 32 columns (qgemv_mx4.cu): every variant runs this one.
void launch_mx4(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream);
// The smem family (qgemv_variant.h; v == V0 falls back to the two above): qgemv_q4_smem.cu,
// qgemv_f8_smem.cu (FP8 with K % 16 != 0 takes v0's per-element kernel).
void launch_q4_smem(QgemvVariant v, const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream);
void launch_f8_smem(QgemvVariant v, const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream);

// Raises a kernel's dynamic shared memory limit to `bytes` when over the default 48 KB, once per
// (kernel, device, size); qgemv.cpp.
void allow_dynamic_smem(const void* kernel, int bytes);

// Warps per block and threads per block of the v0 GEMV kernels.
inline constexpr int kWarps = 4;
inline constexpr int kThreads = 32 * kWarps;

}  // namespace moe::cuda::detail
