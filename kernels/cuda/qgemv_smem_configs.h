// Internal: the block configurations of the smem GEMV variants (qgemv_variant.h), one line each:
// SmemCfg<warps per block, rows per warp, weight prefetch depth in steps, fast decode>.
// Every configuration here is instantiated for M = 1..8 (and Q4/Q4Z) in qgemv_*_smem.cu and in
// the grouped kernels: keep the list short (compile time).
#pragma once
#include "kernels/cuda/qgemv_smem.cuh"
#include "kernels/cuda/qgemv_variant.h"

namespace moe::cuda::detail {

using CfgSmem = SmemCfg<8, 4, 1, false>;
using CfgFast = SmemCfg<8, 4, 1, true>;
using CfgFastR2 = SmemCfg<8, 2, 2, true>;

// The one map from a variant to its configuration: calls f(Cfg{}) and returns true, or returns
// false for V0 (the caller launches v0's kernel) and Auto (resolved by qgemv() / run() before).
template <class F>
bool with_smem_config(QgemvVariant v, F&& f) {
  switch (v) {
    case QgemvVariant::Smem: f(CfgSmem{}); return true;
    case QgemvVariant::Fast: f(CfgFast{}); return true;
    case QgemvVariant::FastR2: f(CfgFastR2{}); return true;
    case QgemvVariant::V0:
    case QgemvVariant::Auto: return false;
  }
  return false;
}

}  // namespace moe::cuda::detail
