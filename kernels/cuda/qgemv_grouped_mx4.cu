// The grouped kernel (qgemv_grouped.cuh) over the MXFP4 body (qgemv_mx4.cuh): gpt-oss's experts.
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_grouped.cuh"
#include "kernels/cuda/qgemv_mx4.cuh"

namespace moe::cuda::detail {
namespace {

struct Mx4Fmt {
  template <int M, int R, class XRows, class YRows>
  static __device__ __forceinline__ void rows(const GroupedDesc& e, const GroupedLaunch& a, int row0, int lane,
                                              const XRows& x, const YRows& y) {
    const Mx4Weights w{e.data, static_cast<const uint8_t*>(e.scales), a.N, a.K};
    mx4_rows<M, R>(w, row0, lane, x, y);
  }
};

}  // namespace

void launch_grouped_mx4(const GroupedLaunch& a, cudaStream_t stream) {
  grouped_gemv<Mx4Fmt><<<grouped_grid(a), kThreads, 0, stream>>>(a);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda::detail
