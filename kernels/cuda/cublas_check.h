// MOE_CUBLAS_CHECK(call): a cuBLAS status other than CUBLAS_STATUS_SUCCESS throws
// std::runtime_error naming the call, file:line and cuBLAS's message (the cuBLAS sibling of
// check.h's MOE_CUDA_CHECK; only code linked with cuBLAS includes it).
#pragma once
#include <cublas_v2.h>

namespace moe::cuda {

[[noreturn]] void cublas_fail(cublasStatus_t status, const char* what, const char* file, int line);

}  // namespace moe::cuda

#define MOE_CUBLAS_CHECK(expr)                                                                  \
  do {                                                                                          \
    const cublasStatus_t moe_cublas_status_ = (expr);                                           \
    if (moe_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                            \
      ::moe::cuda::cublas_fail(moe_cublas_status_, #expr, __FILE__, __LINE__);                  \
  } while (0)
