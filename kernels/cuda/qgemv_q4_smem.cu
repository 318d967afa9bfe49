// INT4 GEMV (Q4, Q4Z), smem family (qgemv_variant.h): 1..8 consecutive tokens per launch, one
// kernel per (variant, M, zero points). Body: qgemv_q4_smem.cuh; tile and K loop: qgemv_smem.cuh.
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_launch.h"
#include "kernels/cuda/qgemv_q4_smem.cuh"
#include "kernels/cuda/qgemv_smem_configs.h"

namespace moe::cuda::detail {
namespace {

template <class Cfg, int M, bool Asym>
__global__ void __launch_bounds__(Cfg::kThreads, min_blocks<Cfg>(M))
    q4_smem_gemv(const Q4Weights W, const float* __restrict__ x /*[M, K]*/, float* __restrict__ y /*[M, N]*/) {
  extern __shared__ float4 smem[];
  Q4SmemBody<Cfg, Asym> body(W, int(blockIdx.x * Cfg::W + threadIdx.x / 32) * Cfg::R);
  smem_gemv<M, Cfg>(body, W.K, StridedRows<const float>{x, W.K}, StridedRows<float>{y, W.N},
                    reinterpret_cast<float*>(smem));
}

using Kernel = void (*)(const Q4Weights, const float*, float*);

template <class Cfg, bool Asym>
constexpr Kernel kKernels[kQgemvMaxM] = {
    q4_smem_gemv<Cfg, 1, Asym>, q4_smem_gemv<Cfg, 2, Asym>, q4_smem_gemv<Cfg, 3, Asym>, q4_smem_gemv<Cfg, 4, Asym>,
    q4_smem_gemv<Cfg, 5, Asym>, q4_smem_gemv<Cfg, 6, Asym>, q4_smem_gemv<Cfg, 7, Asym>, q4_smem_gemv<Cfg, 8, Asym>};

template <class Cfg>
void launch(const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  const Q4Weights W{static_cast<const uint8_t*>(w.data), static_cast<const uint16_t*>(w.scales), w.zeros,
                    int(w.rows), int(w.cols), int(w.group)};
  const Kernel k = w.dtype == DType::Q4Z ? kKernels<Cfg, true>[M - 1] : kKernels<Cfg, false>[M - 1];
  const int bytes = tile_geom(M, W.K, Q4SmemBody<Cfg, false>::kStepCols, Cfg::Fast).bytes;
  allow_dynamic_smem(reinterpret_cast<const void*>(k), bytes);
  constexpr int rows_per_block = Cfg::W * Cfg::R;
  k<<<unsigned((W.N + rows_per_block - 1) / rows_per_block), Cfg::kThreads, size_t(bytes), stream>>>(W, x, y);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_q4_smem(QgemvVariant v, const float* x, int M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  if (!with_smem_config(v, [&](auto cfg) { launch<decltype(cfg)>(x, M, w, y, stream); }))
    launch_q4(x, M, w, y, stream);
}

}  // namespace moe::cuda::detail
