// INT8 GEMV (per-row fp32 scales), 1..8 consecutive tokens per launch: the dense weights of
// `--dense int8` packs, which the GPU engine used to widen to fp32 (4x the bytes a token reads).
// The FP8 body with an INT8 byte decoder (qgemv_f8.cuh: per-row scales are its group 0), one
// form for every variant. K % 16 == 0 (gpu_weights.cpp widens other K).
#include "kernels/cuda/qgemv_f8.cuh"
#include "kernels/cuda/qgemv_fmt.cuh"

namespace moe::cuda::detail {

void launch_i8(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  launch_fmt<ByteFmt<I8Byte>>(x, M, w, y, stream);  // check_weight: w.group == 0
}

}  // namespace moe::cuda::detail
