// Internal: the grouped kernel of the smem GEMV family (qgemv_variant.h), generic over the
// format's body (qgemv_q4_smem.cuh, qgemv_f8_smem.cuh); instantiated in qgemv_grouped_q4_smem.cu
// and qgemv_grouped_f8_smem.cu.
//
// Grid as the v0 grouped kernel (qgemv_grouped.cuh): x = work items (one expert's pass of <= 8
// tokens), y = blocks of Cfg::W * Cfg::R rows. The block stages its item's tokens, gathered
// through the pair list, into the tile. The token count is known per block only at run time and
// one kernel's registers are those of its largest body, so only the M = 1 and 2 bodies exist
// here (<= 128 registers, 2 blocks an SM, no spills; M = 8 needs ~200): an item of more tokens
// runs them in passes of 2, its rows re-read from L2 and re-decoded. Decode (one or two tokens a
// layer per expert) is what this kernel is for; many tokens an expert want a GEMM.
#pragma once
#include <algorithm>

#include "kernels/cuda/qgemv_grouped_launch.h"
#include "kernels/cuda/qgemv_launch.h"
#include "kernels/cuda/qgemv_smem.cuh"

namespace moe::cuda::detail {

// MakeBody::make(desc, launch, row0) returns the format's body for one warp's rows.
template <class Cfg, class MakeBody>
__global__ void __launch_bounds__(Cfg::kThreads, 2) grouped_smem_gemv(const GroupedLaunch a) {
  extern __shared__ float4 smem4[];
  float* smem = reinterpret_cast<float*>(smem4);
  const GroupedItem it = a.items[blockIdx.x];
  auto body = MakeBody::make(a.experts[it.expert], a, int(blockIdx.y * Cfg::W + threadIdx.x / 32) * Cfg::R);
  const IndexedRows<const float> x{a.x, a.x_rows + it.first, a.K};  // [count] tokens of x [T, K]
  const IndexedRows<float> y{a.y, a.y_rows + it.first, a.N};         // [count] rows of y [Y, N]
  if (it.count == 1) {
    smem_gemv<1, Cfg>(body, a.K, x, y, smem);
    return;
  }
  for (int m0 = 0; m0 < it.count; m0 += 2) {  // count 1..kQgemvMaxM, checked on the host
    if (m0 > 0) __syncthreads();  // every warp is done with the previous pass's tile
    const IndexedRows<const float> xp{a.x, x.rows + m0, a.K};
    const IndexedRows<float> yp{a.y, y.rows + m0, a.N};
    if (it.count - m0 == 1) smem_gemv<1, Cfg>(body, a.K, xp, yp, smem);
    else smem_gemv<2, Cfg>(body, a.K, xp, yp, smem);
  }
}

// Launches grouped_smem_gemv with the tile sized for the larger pass (1 or 2 tokens).
template <class Cfg, class MakeBody>
void launch_grouped_smem(const GroupedLaunch& a, int step_cols, bool block_sums, cudaStream_t stream) {
  int bytes = 0;
  for (int m = 1; m <= 2; ++m) bytes = std::max(bytes, tile_geom(m, a.K, step_cols, block_sums).bytes);
  const auto k = grouped_smem_gemv<Cfg, MakeBody>;
  allow_dynamic_smem(reinterpret_cast<const void*>(k), bytes);
  constexpr int rows_per_block = Cfg::W * Cfg::R;
  const dim3 grid(unsigned(a.n_items), unsigned((a.N + rows_per_block - 1) / rows_per_block));
  k<<<grid, Cfg::kThreads, size_t(bytes), stream>>>(a);
}

}  // namespace moe::cuda::detail
