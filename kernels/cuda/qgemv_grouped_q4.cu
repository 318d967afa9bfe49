// The grouped kernel (qgemv_grouped.cuh) over the INT4 body (qgemv_q4.cuh): Q4 and Q4Z.
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_grouped.cuh"
#include "kernels/cuda/qgemv_q4.cuh"

namespace moe::cuda::detail {
namespace {

template <bool Asym>
struct Q4Fmt {
  template <int M, int R, class XRows, class YRows>
  static __device__ __forceinline__ void rows(const GroupedDesc& e, const GroupedLaunch& a, int row0, int lane,
                                              const XRows& x, const YRows& y) {
    const Q4Weights w{e.data, static_cast<const uint16_t*>(e.scales), e.zeros, a.N, a.K, a.group};
    q4_rows<M, R, Asym>(w, row0, lane, x, y);
  }
};

}  // namespace

void launch_grouped_q4(const GroupedLaunch& a, bool zero_points, cudaStream_t stream) {
  if (zero_points) grouped_gemv<Q4Fmt<true>><<<grouped_grid(a), kThreads, 0, stream>>>(a);
  else grouped_gemv<Q4Fmt<false>><<<grouped_grid(a), kThreads, 0, stream>>>(a);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda::detail
