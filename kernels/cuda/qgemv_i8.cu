// INT8 GEMV (per-row fp32 scales), 1..8 consecutive tokens per launch: the dense weights of
// `--dense int8` packs, which the GPU engine used to widen to fp32 (4x the bytes a token reads).
// The FP8 body with an INT8 byte decoder (qgemv_f8.cuh: per-row scales are its group 0), one
// form for every variant. K % 16 == 0 (gpu_weights.cpp widens other K).
#include "kernels/cuda/qgemv_f8.cuh"
#include "kernels/cuda/qgemv_fmt.cuh"

namespace moe::cuda::detail {
namespace {

struct I8Fmt {
  template <int M, int R, class XRows, class YRows>
  static __device__ __forceinline__ void rows(const GroupedDesc& e, const GroupedLaunch& a, int row0, int lane,
                                              const XRows& x, const YRows& y) {
    const F8Weights w{e.data, static_cast<const float*>(e.scales), a.N, a.K, 0};
    f8_rows<M, R, I8Byte>(w, row0, lane, x, y);
  }
};

}  // namespace

void launch_i8(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  launch_fmt<I8Fmt>(x, M, w, y, stream);
}

}  // namespace moe::cuda::detail
