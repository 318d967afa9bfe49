// Internal: the block configurations of the smem GEMV variants (qgemv_variant.h), one line each:
// SmemCfg<warps per block, rows per warp, weight prefetch depth in steps, fast decode>.
// Every configuration here is instantiated for M = 1..8 (and Q4/Q4Z) in qgemv_*_smem.cu and in
// the grouped kernels: keep the list short (compile time).
#pragma once
#include "kernels/cuda/qgemv_smem.cuh"

namespace moe::cuda::detail {

using CfgSmem = SmemCfg<8, 4, 1, false>;
using CfgFast = SmemCfg<8, 4, 1, true>;
using CfgFastR2 = SmemCfg<8, 2, 2, true>;

}  // namespace moe::cuda::detail
