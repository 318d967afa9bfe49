// QgemvGrouped::set_pairs' plan writer: one thread per (plan, token-slot pair) fills that pair's
// descriptor (the routed expert's entry of the plan's table), its one-token item, and its x / y
// rows. Gate, up and down plans of a layer in one launch (blockIdx.y = plan).
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_grouped_launch.h"

namespace moe::cuda::detail {
namespace {

struct PairPlans {
  PairPlanArgs p[kMaxPairPlans];
};

__global__ void pair_plan_kernel(const PairPlans plans, const int32_t* __restrict__ ids, int P) {
  const int i = int(blockIdx.x) * int(blockDim.x) + int(threadIdx.x);
  if (i >= P) return;
  const PairPlanArgs& a = plans.p[blockIdx.y];
  a.desc[i] = a.table[ids[i]];
  a.items[i] = GroupedItem{i, i, 1};
  a.x_rows[i] = i / a.x_div;
  a.y_rows[i] = i;
}

}  // namespace

void launch_pair_plans(const PairPlanArgs* plans, int n, const int32_t* ids, int P, cudaStream_t stream) {
  constexpr int kBlock = 128;
  PairPlans all{};
  for (int i = 0; i < n; ++i) all.p[i] = plans[i];
  pair_plan_kernel<<<dim3(unsigned((P + kBlock - 1) / kBlock), unsigned(n)), kBlock, 0, stream>>>(all, ids, P);
  MOE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace moe::cuda::detail
