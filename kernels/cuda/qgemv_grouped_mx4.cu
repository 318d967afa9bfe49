// The grouped kernel (qgemv_grouped.cuh) over the MXFP4 body (qgemv_mx4.cuh): gpt-oss's experts.
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_grouped.cuh"
#include "kernels/cuda/qgemv_mx4.cuh"

namespace moe::cuda::detail {

void launch_grouped_mx4(const GroupedLaunch& a, cudaStream_t stream) {
  grouped_gemv<Mx4Fmt><<<grouped_grid(a), kThreads, 0, stream>>>(a);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda::detail
