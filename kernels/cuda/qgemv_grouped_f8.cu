// The grouped kernel (qgemv_grouped.cuh) over the FP8 e4m3 vector body (qgemv_f8.cuh):
// per-row or 128x128 block scales, K % 16 == 0.
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_f8.cuh"
#include "kernels/cuda/qgemv_grouped.cuh"

namespace moe::cuda::detail {
namespace {

struct F8Fmt {
  template <int M, int R, class XRows, class YRows>
  static __device__ __forceinline__ void rows(const GroupedDesc& e, const GroupedLaunch& a, int row0, int lane,
                                              const XRows& x, const YRows& y) {
    const F8Weights w{e.data, static_cast<const float*>(e.scales), a.N, a.K, a.group};
    f8_rows<M, R>(w, row0, lane, x, y);
  }
};

}  // namespace

void launch_grouped_f8(const GroupedLaunch& a, cudaStream_t stream) {
  grouped_gemv<F8Fmt><<<grouped_grid(a), kThreads, 0, stream>>>(a);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda::detail
