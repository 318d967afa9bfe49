// MXFP4 GEMV (e2m1 values, one e8m0 scale per 32 columns), 1..8 consecutive tokens per launch:
// the per-warp body and its mapping are in qgemv_mx4.cuh. K % 32 == 0 (the format's own rule).
#include "kernels/cuda/qgemv_fmt.cuh"
#include "kernels/cuda/qgemv_mx4.cuh"

namespace moe::cuda::detail {

void launch_mx4(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  launch_fmt<Mx4Fmt>(x, M, w, y, stream);
}

}  // namespace moe::cuda::detail
