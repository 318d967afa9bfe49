// QgemvGrouped::set_pairs' plan writer: one thread per (token, slot) pair fills that pair's
// descriptor (the routed expert's entry of the table), its one-token item, and its x / y rows.
#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_grouped_launch.h"

namespace moe::cuda::detail {
namespace {

__global__ void pair_plan_kernel(const GroupedDesc* __restrict__ table, const int32_t* __restrict__ ids, int P,
                                 int x_div, GroupedDesc* desc, GroupedItem* items, int32_t* x_rows, int32_t* y_rows) {
  const int i = int(blockIdx.x) * int(blockDim.x) + int(threadIdx.x);
  if (i >= P) return;
  desc[i] = table[ids[i]];
  items[i] = GroupedItem{i, i, 1};
  x_rows[i] = i / x_div;
  y_rows[i] = i;
}

}  // namespace

void launch_pair_plan(const GroupedDesc* table, const int32_t* ids, int P, int x_div, GroupedDesc* desc,
                      GroupedItem* items, int32_t* x_rows, int32_t* y_rows, cudaStream_t stream) {
  constexpr int kBlock = 128;
  pair_plan_kernel<<<unsigned((P + kBlock - 1) / kBlock), kBlock, 0, stream>>>(table, ids, P, x_div, desc, items, x_rows,
                                                                              y_rows);
  MOE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace moe::cuda::detail
