// The grouped kernel of the smem family (qgemv_grouped_smem.cuh) over the INT4 body
// (qgemv_q4_smem.cuh): Q4 and Q4Z, one kernel per (variant, zero points).
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_grouped_smem.cuh"
#include "kernels/cuda/qgemv_q4_smem.cuh"
#include "kernels/cuda/qgemv_smem_configs.h"

namespace moe::cuda::detail {
namespace {

template <class Cfg, bool Asym>
struct MakeQ4 {
  static __device__ __forceinline__ Q4SmemBody<Cfg, Asym> make(const GroupedDesc& e, const GroupedLaunch& a, int row0) {
    return Q4SmemBody<Cfg, Asym>(Q4Weights{e.data, static_cast<const uint16_t*>(e.scales), e.zeros, a.N, a.K, a.group},
                                 row0);
  }
};

template <class Cfg>
void launch(const GroupedLaunch& a, bool zero_points, cudaStream_t stream) {
  constexpr int step = Q4SmemBody<Cfg, false>::kStepCols;
  if (zero_points) launch_grouped_smem<Cfg, MakeQ4<Cfg, true>>(a, step, Cfg::Fast, stream);
  else launch_grouped_smem<Cfg, MakeQ4<Cfg, false>>(a, step, Cfg::Fast, stream);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_grouped_q4_smem(QgemvVariant v, const GroupedLaunch& a, bool zero_points, cudaStream_t stream) {
  if (!with_smem_config(v, [&](auto cfg) { launch<decltype(cfg)>(a, zero_points, stream); }))
    launch_grouped_q4(a, zero_points, stream);
}

}  // namespace moe::cuda::detail
