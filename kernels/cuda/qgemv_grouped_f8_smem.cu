// The grouped kernel of the smem family (qgemv_grouped_smem.cuh) over the FP8 e4m3 body
// (qgemv_f8_smem.cuh): per-row or 128x128 block scales, K % 16 == 0; one kernel per variant.
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_f8_smem.cuh"
#include "kernels/cuda/qgemv_grouped_smem.cuh"
#include "kernels/cuda/qgemv_smem_configs.h"

namespace moe::cuda::detail {
namespace {

template <class Cfg>
struct MakeF8 {
  static __device__ __forceinline__ F8SmemBody<Cfg> make(const GroupedDesc& e, const GroupedLaunch& a, int row0) {
    return F8SmemBody<Cfg>(F8Weights{e.data, static_cast<const float*>(e.scales), a.N, a.K, a.group}, row0);
  }
};

template <class Cfg>
void launch(const GroupedLaunch& a, cudaStream_t stream) {
  launch_grouped_smem<Cfg, MakeF8<Cfg>>(a, F8SmemBody<Cfg>::kStepCols, false, stream);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_grouped_f8_smem(QgemvVariant v, const GroupedLaunch& a, cudaStream_t stream) {
  if (!with_smem_config(v, [&](auto cfg) { launch<decltype(cfg)>(a, stream); })) launch_grouped_f8(a, stream);
}

}  // namespace moe::cuda::detail
