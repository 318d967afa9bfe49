// FP8 e4m3 GEMV (K % 16 == 0), smem family (qgemv_variant.h): 1..8 consecutive tokens per
// launch, one kernel per (variant, M). Body: qgemv_f8_smem.cuh; tile and K loop: qgemv_smem.cuh.
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_f8_smem.cuh"
#include "kernels/cuda/qgemv_launch.h"
#include "kernels/cuda/qgemv_smem_configs.h"

namespace moe::cuda::detail {
namespace {

template <class Cfg, int M>
__global__ void __launch_bounds__(Cfg::kThreads, min_blocks<Cfg>(M))
    f8_smem_gemv(const F8Weights W, const float* __restrict__ x /*[M, K]*/, float* __restrict__ y /*[M, N]*/) {
  extern __shared__ float4 smem[];
  F8SmemBody<Cfg> body(W, int(blockIdx.x * Cfg::W + threadIdx.x / 32) * Cfg::R);
  smem_gemv<M, Cfg>(body, W.K, StridedRows<const float>{x, W.K}, StridedRows<float>{y, W.N},
                    reinterpret_cast<float*>(smem));
}

using Kernel = void (*)(const F8Weights, const float*, float*);

template <class Cfg>
constexpr Kernel kKernels[kQgemvMaxM] = {f8_smem_gemv<Cfg, 1>, f8_smem_gemv<Cfg, 2>, f8_smem_gemv<Cfg, 3>,
                                         f8_smem_gemv<Cfg, 4>, f8_smem_gemv<Cfg, 5>, f8_smem_gemv<Cfg, 6>,
                                         f8_smem_gemv<Cfg, 7>, f8_smem_gemv<Cfg, 8>};

template <class Cfg>
void launch(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  const F8Weights W{static_cast<const uint8_t*>(w.data), static_cast<const float*>(w.scales), int(w.rows),
                    int(w.cols), int(w.group)};
  const Kernel k = kKernels<Cfg>[M - 1];
  const int bytes = tile_geom(M, W.K, F8SmemBody<Cfg>::kStepCols, false).bytes;
  allow_dynamic_smem(reinterpret_cast<const void*>(k), bytes);
  constexpr int rows_per_block = Cfg::W * Cfg::R;
  k<<<unsigned((W.N + rows_per_block - 1) / rows_per_block), Cfg::kThreads, size_t(bytes), stream>>>(W, x, y);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_f8_smem(QgemvVariant v, const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  if (w.cols % 16 != 0) return launch_f8(x, M, w, y, stream);  // v0's per-element kernel
  if (!with_smem_config(v, [&](auto cfg) { launch<decltype(cfg)>(x, M, w, y, stream); }))
    launch_f8(x, M, w, y, stream);
}

}  // namespace moe::cuda::detail
