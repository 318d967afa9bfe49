// Internal: qgemv's launcher for the formats with one kernel form for every variant (INT8,
// MXFP4): the per-warp body of a format struct, the same Fmt::rows the grouped kernel calls
// (qgemv_grouped.cuh), over consecutive tokens. Instantiated in qgemv_i8.cu and qgemv_mx4.cu.
#pragma once
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_common.cuh"
#include "kernels/cuda/qgemv_grouped_launch.h"
#include "kernels/cuda/qgemv_launch.h"

namespace moe::cuda::detail {

template <class Fmt, int M>
__global__ void __launch_bounds__(kThreads) fmt_gemv(const GroupedDesc e, int N, int K, int group,
                                                     const float* __restrict__ x, float* __restrict__ y) {
  constexpr int R = rows_per_warp(M);
  const int row0 = (blockIdx.x * kWarps + threadIdx.x / 32) * R;
  if (row0 >= N) return;  // whole warp
  GroupedLaunch a{};
  a.N = N, a.K = K, a.group = group;
  Fmt::template rows<M, R>(e, a, row0, threadIdx.x % 32, StridedRows<const float>{x, K}, StridedRows<float>{y, N});
}

// y [M, N] = x [M, K] . W^T for 1 <= M <= kQgemvMaxM tokens (qgemv.cpp tiles larger M).
template <class Fmt>
void launch_fmt(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  using Kernel = void (*)(GroupedDesc, int, int, int, const float*, float*);
  static constexpr Kernel kernels[kQgemvMaxM] = {fmt_gemv<Fmt, 1>, fmt_gemv<Fmt, 2>, fmt_gemv<Fmt, 3>,
                                                 fmt_gemv<Fmt, 4>, fmt_gemv<Fmt, 5>, fmt_gemv<Fmt, 6>,
                                                 fmt_gemv<Fmt, 7>, fmt_gemv<Fmt, 8>};
  const int N = int(w.rows), rows_per_block = kWarps * rows_per_warp(M);
  const GroupedDesc e{static_cast<const uint8_t*>(w.data), w.scales, w.zeros};
  kernels[M - 1]<<<unsigned((N + rows_per_block - 1) / rows_per_block), kThreads, 0, stream>>>(
      e, N, int(w.cols), int(w.group), x, y);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda::detail
