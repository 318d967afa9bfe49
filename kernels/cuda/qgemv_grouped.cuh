// Internal: the grouped kernel, generic over the format's per-warp body (qgemv_q4.cuh,
// qgemv_f8.cuh); instantiated once per format in qgemv_grouped_q4.cu / qgemv_grouped_f8.cu.
//
// Grid: x = work items (one expert's pass of <= 8 tokens), y = blocks of kWarps * 4 rows of N.
// Items of one expert are neighbours in x, so its later passes find the weights in L2. The
// token count is known per block only at run time: a switch picks the M = 1..8 body.
#pragma once
#include "kernels/cuda/qgemv_common.cuh"
#include "kernels/cuda/qgemv_grouped_launch.h"
#include "kernels/cuda/qgemv_launch.h"

namespace moe::cuda::detail {

// A warp's kGroupedRowsPerWarp rows from row0 in steps of the M-token body's R rows.
// Fmt::rows<M, R>(desc, N, K, group, row0, lane, x, y) is the format's body.
template <class Fmt, int M>
__device__ __forceinline__ void grouped_warp(const GroupedDesc& e, const GroupedLaunch& a, int row0, int lane,
                                             const IndexedRows<const float>& x, const IndexedRows<float>& y) {
  constexpr int R = rows_per_warp(M);
  static_assert(kGroupedRowsPerWarp % R == 0, "the warp's rows split into whole bodies");
#pragma unroll
  for (int r = 0; r < kGroupedRowsPerWarp; r += R)
    if (row0 + r < a.N) Fmt::template rows<M, R>(e, a, row0 + r, lane, x, y);
}

template <class Fmt>
__global__ void __launch_bounds__(kThreads) grouped_gemv(const GroupedLaunch a) {
  const int row0 = (blockIdx.y * kWarps + threadIdx.x / 32) * kGroupedRowsPerWarp;
  if (row0 >= a.N) return;  // whole warp
  const GroupedItem it = a.items[blockIdx.x];
  const GroupedDesc e = a.experts[it.expert];
  const int lane = threadIdx.x % 32;
  const IndexedRows<const float> x{a.x, a.x_rows + it.first, a.K};  // [count] tokens of x [T, K]
  const IndexedRows<float> y{a.y, a.y_rows + it.first, a.N};         // [count] rows of y [Y, N]
  switch (it.count) {  // 1..kQgemvMaxM, checked on the host
    case 1: grouped_warp<Fmt, 1>(e, a, row0, lane, x, y); break;
    case 2: grouped_warp<Fmt, 2>(e, a, row0, lane, x, y); break;
    case 3: grouped_warp<Fmt, 3>(e, a, row0, lane, x, y); break;
    case 4: grouped_warp<Fmt, 4>(e, a, row0, lane, x, y); break;
    case 5: grouped_warp<Fmt, 5>(e, a, row0, lane, x, y); break;
    case 6: grouped_warp<Fmt, 6>(e, a, row0, lane, x, y); break;
    case 7: grouped_warp<Fmt, 7>(e, a, row0, lane, x, y); break;
    case 8: grouped_warp<Fmt, 8>(e, a, row0, lane, x, y); break;
    default: break;
  }
}

// Grid of the grouped kernel: items x row blocks (limits checked on the host).
inline dim3 grouped_grid(const GroupedLaunch& a) {
  constexpr int rows_per_block = kWarps * kGroupedRowsPerWarp;
  return dim3(unsigned(a.n_items), unsigned((a.N + rows_per_block - 1) / rows_per_block));
}

}  // namespace moe::cuda::detail
