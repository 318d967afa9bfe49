// Internal: what qgemv_grouped.cpp uploads and the per-format launchers of the grouped kernel
// (qgemv_grouped_q4.cu, qgemv_grouped_f8.cu). Plain structs: the host compiler builds them too.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/qgemv_variant.h"
#include "quant/dtype.h"

namespace moe::cuda::detail {

// One active expert's weight (device pointers; N, K, group are the layer's).
struct GroupedDesc {
  const uint8_t* data;
  const void* scales;    // fp16 (Q4, Q4Z), fp32 (F8E4M3) or e8m0 bytes (MXFP4)
  const uint8_t* zeros;  // Q4Z only
};

// One block column of the grid: pairs [first, first + count) of expert `expert`, count <= 8
// (kTcMaxM = 64 in a tensor-core plan).
struct GroupedItem {
  int32_t expert, first, count;
};

// Rows of N per warp and per block of the v0 grouped kernel: 4 (the rows a warp takes at M > 2;
// at M <= 2 the warp runs the 2-row body twice), so every pass of a grid column covers the
// same rows whatever its token count.
inline constexpr int kGroupedRowsPerWarp = 4;

struct GroupedLaunch {
  const GroupedDesc* experts;  // [active experts]
  const GroupedItem* items;    // [n_items]
  const int32_t* x_rows;       // [pairs]
  const int32_t* y_rows;       // [pairs]
  const float* x;              // [T, K]
  float* y;                    // [Y, N]
  int64_t n_items;
  int N, K, group;
};

void launch_grouped_q4(const GroupedLaunch& a, bool zero_points, cudaStream_t stream);
// The tensor-core GEMM of GroupedMath::TensorCoreBf16 (qgemm_tc.cu): items of <= kTcMaxM tokens,
// blocks of kTcRows rows of N; the formats tensor_core_format accepts (qgemv_grouped.h).
inline constexpr int kTcMaxM = 64, kTcRows = 64;
void launch_grouped_tc(const GroupedLaunch& a, DType dtype, cudaStream_t stream);
// tc_gemm_rows' launcher: one weight (desc e, dtype, [N, K], group) over n rows listed on the device.
void launch_rows_tc(const GroupedDesc& e, DType dtype, const int32_t* rows, int n, const float* x, float* y, int N,
                    int K, int group, cudaStream_t stream);
void launch_grouped_f8(const GroupedLaunch& a, cudaStream_t stream);
void launch_grouped_mx4(const GroupedLaunch& a, cudaStream_t stream);  // every variant runs it
// The smem family (qgemv_variant.h; v == V0 falls back to the two above):
// qgemv_grouped_q4_smem.cu, qgemv_grouped_f8_smem.cu.
void launch_grouped_q4_smem(QgemvVariant v, const GroupedLaunch& a, bool zero_points, cudaStream_t stream);
void launch_grouped_f8_smem(QgemvVariant v, const GroupedLaunch& a, cudaStream_t stream);
// QgemvGrouped::set_pairs (qgemv_grouped_pairs.cu): in each of n plans, pair i < P gets
// desc[i] = table[ids[i]], item {i, i, 1}, x row i / x_div (the routing's k: the pair's token;
// 1: the pair's own row) and y row i. One launch for all n.
inline constexpr int kMaxPairPlans = 3;
struct PairPlanArgs {
  const GroupedDesc* table;
  GroupedDesc* desc;
  GroupedItem* items;
  int32_t* x_rows;
  int32_t* y_rows;
  int x_div;
};
void launch_pair_plans(const PairPlanArgs* plans, int n, const int32_t* ids, int P, cudaStream_t stream);

}  // namespace moe::cuda::detail
