// Activations fp32 -> bf16 / f16 for dense_gemm (cuBLAS multiplies A and B of one type).
// Round-to-nearest-even, as quant/dtype.h's f32_to_bf16 / f32_to_f16 (the tests' reference).
// Memory-bound: each thread reads a float4 and writes 8 bytes; a scalar loop takes the n % 4 tail.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/cuda/check.h"
#include "kernels/cuda/dense_gemm_launch.h"

namespace moe::cuda::detail {
namespace {

constexpr int kThreads = 256;

template <class T>
__device__ __forceinline__ T narrow(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 narrow<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half narrow<__half>(float v) { return __float2half_rn(v); }

// x [n] -> out [n]; x and out 16-byte aligned (cudaMalloc'd), so the float4 / 8-byte accesses are legal.
template <class T>
__global__ void narrow_kernel(const float* __restrict__ x, int64_t n, T* __restrict__ out) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t n4 = n / 4;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n4; i += stride) {
    const float4 v = reinterpret_cast<const float4*>(x)[i];
    T* o = out + 4 * i;
    o[0] = narrow<T>(v.x), o[1] = narrow<T>(v.y), o[2] = narrow<T>(v.z), o[3] = narrow<T>(v.w);
  }
  for (int64_t i = 4 * n4 + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = narrow<T>(x[i]);
}

template <class T>
void launch(const float* x, int64_t n, void* out, cudaStream_t stream) {
  // Enough blocks to fill any current GPU (132 SMs x 8 blocks of 256), capped so huge n loops.
  const unsigned blocks = unsigned(std::clamp<int64_t>((n / 4 + kThreads - 1) / kThreads, 1, 2048));
  narrow_kernel<T><<<blocks, kThreads, 0, stream>>>(x, n, static_cast<T*>(out));
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_narrow(const float* x, int64_t n, DType to, void* out, cudaStream_t stream) {
  if (to == DType::BF16)
    launch<__nv_bfloat16>(x, n, out, stream);
  else
    launch<__half>(x, n, out, stream);
}

}  // namespace moe::cuda::detail
