// Embedding gather: one block per token copies its table row, widened to fp32.
// The ids are validated on the host first; the kernel still refuses an out-of-range id (a
// row of NaN, never a read outside the table) in case the scratch is overwritten meanwhile.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/ops_common.cuh"

namespace moe::cuda {
namespace {

template <DType D>
__device__ __forceinline__ float widen(const void* table, int64_t i) {
  if constexpr (D == DType::F32) return static_cast<const float*>(table)[i];
  else if constexpr (D == DType::BF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(table)[i]);
  else return __half2float(static_cast<const __half*>(table)[i]);
}

template <DType D>
__global__ void embed_rows(const void* __restrict__ table,   // [V, H]
                           const int32_t* __restrict__ ids,  // [T]
                           int64_t V, int H,
                           float* __restrict__ out) {        // [T, H]
  const int64_t id = ids[blockIdx.x];
  float* row = out + int64_t(blockIdx.x) * H;
  const bool ok = id >= 0 && id < V;
  for (int c = threadIdx.x; c < H; c += blockDim.x) row[c] = ok ? widen<D>(table, id * H + c) : __int_as_float(0x7fffffff);
}

// Format, shape and T: what both entry points check before anything is copied or launched.
void check_args(const DeviceWeight& table, int64_t T) {
  const DType d = table.dtype;
  ops_detail::require(d == DType::F32 || d == DType::BF16 || d == DType::F16, "embed",
                      "table must be F32, BF16 or F16, got " + std::string(dtype_name(d)));
  ops_detail::require(table.rows >= 0 && table.cols >= 0 && table.cols <= INT_MAX, "embed", "bad table shape");
  ops_detail::require(T >= 0 && T <= INT_MAX, "embed", "token count must be in 0..2^31-1");
}

// The gather itself, arguments checked (T > 0, cols > 0, pointers set).
void launch_embed(const DeviceWeight& table, const int32_t* ids, int64_t T, float* out, cudaStream_t stream) {
  const DType d = table.dtype;
  const int H = int(table.cols), threads = H >= 256 ? 256 : 32 * ((H + 31) / 32);
  const auto kernel = d == DType::F32 ? embed_rows<DType::F32> : d == DType::BF16 ? embed_rows<DType::BF16> : embed_rows<DType::F16>;
  kernel<<<unsigned(T), threads, 0, stream>>>(table.data, ids, table.rows, H, out);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace

void embed(const DeviceWeight& table, const int32_t* host_ids, int64_t T, int32_t* ids_scratch, float* out,
           cudaStream_t stream) {
  using ops_detail::require;
  check_args(table, T);  // every check before the copy
  if (T == 0) return;
  require(host_ids != nullptr, "embed", "null ids");
  for (int64_t t = 0; t < T; ++t)
    require(host_ids[t] >= 0 && host_ids[t] < table.rows, "embed",
            "token " + std::to_string(t) + " has id " + std::to_string(host_ids[t]) + ", outside the table's [0, " +
                std::to_string(table.rows) + ")");
  if (table.cols == 0) return;
  require(table.data && ids_scratch && out, "embed", "null pointer");
  MOE_CUDA_CHECK(cudaMemcpyAsync(ids_scratch, host_ids, size_t(T) * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
  launch_embed(table, ids_scratch, T, out, stream);
}

void embed_device(const DeviceWeight& table, const int32_t* ids, int64_t T, float* out, cudaStream_t stream) {
  check_args(table, T);
  if (T == 0 || table.cols == 0) return;
  ops_detail::require(table.data && ids && out, "embed", "null pointer");
  launch_embed(table, ids, T, out, stream);
}

}  // namespace moe::cuda
