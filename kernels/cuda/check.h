// Error checking for every CUDA runtime call and kernel launch: a failure throws
// std::runtime_error naming the call, file:line and the driver's message (never an assert,
// which NDEBUG would remove).
#pragma once
#include <cuda_runtime_api.h>

namespace moe::cuda {

[[noreturn]] void cuda_fail(cudaError_t err, const char* what, const char* file, int line);

}  // namespace moe::cuda

#define MOE_CUDA_CHECK(expr)                                                         \
  do {                                                                               \
    const cudaError_t moe_cuda_err_ = (expr);                                        \
    if (moe_cuda_err_ != cudaSuccess) ::moe::cuda::cuda_fail(moe_cuda_err_, #expr, __FILE__, __LINE__); \
  } while (0)

// Right after a <<<...>>> launch: catches bad configurations (grid, block, resources). Errors
// raised while the kernel runs surface at the next synchronising call's MOE_CUDA_CHECK.
#define MOE_CUDA_CHECK_LAUNCH() MOE_CUDA_CHECK(cudaGetLastError())
