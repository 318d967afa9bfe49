// The grouped kernel (qgemv_grouped.cuh) over the FP8 e4m3 vector body (qgemv_f8.cuh):
// per-row or 128x128 block scales, K % 16 == 0.
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_f8.cuh"
#include "kernels/cuda/qgemv_grouped.cuh"

namespace moe::cuda::detail {

void launch_grouped_f8(const GroupedLaunch& a, cudaStream_t stream) {
  grouped_gemv<ByteFmt<F8Byte>><<<grouped_grid(a), kThreads, 0, stream>>>(a);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda::detail
