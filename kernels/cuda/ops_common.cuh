// Internal helpers of the small ops (norm.cu, rope.cu, elementwise.cu, router.cu, embed.cu):
// argument checks and launch sizing on the host, warp / block reductions on the device.
#pragma once
#include "kernels/cuda/ops.h"
#include "kernels/cuda/warp.cuh"
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace moe::cuda::ops_detail {

// Throws std::invalid_argument("<op>: <why>") unless ok; called before anything is launched.
inline void require(bool ok, const char* op, const std::string& why) {
  if (!ok) throw std::invalid_argument(std::string(op) + ": " + why);
}

// A RoPE layout's checks (rope.cu, qk_norm_rope.cu): false for head_dim 0 (nothing to do).
inline bool check_rope_layout(const RopeLayout& l, const char* op) {
  require(l.head_dim >= 0 && l.head_dim % 2 == 0, op, "head_dim must be even, got " + std::to_string(l.head_dim));
  if (l.head_dim == 0) return false;
  require(l.rot_dims >= 2 && l.rot_dims <= l.head_dim && l.rot_dims % 2 == 0, op,
          "rot_dims must be even and in 2..head_dim (" + std::to_string(l.head_dim) + "), got " +
              std::to_string(l.rot_dims));
  return true;
}

// Threads per block of the grid-stride kernels.
inline constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements: enough to fill any current GPU (132 SMs x
// 2048 threads = 1056 blocks of 256), capped so huge n loops instead of launching millions.
inline unsigned grid_stride_blocks(int64_t n) {
  return unsigned(std::min<int64_t>((n + kThreads - 1) / kThreads, 4096));
}

// Threads per block of a row norm over n columns: about 8 columns per thread, 32..256, so
// head_dim-sized rows get one warp and hidden-sized rows a block whose loads stay coalesced.
// (norm.cu and qk_norm_rope.cu share it: the same block size gives the same sums.)
inline int norm_threads(int64_t n) { return int(std::clamp<int64_t>((n / 8 + 31) / 32 * 32, 32, 256)); }

using ::moe::cuda::warp_max;
using ::moe::cuda::warp_sum;

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the total.
// Ends with a barrier, so it may be called again right after.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  v = warp_sum(v);
  if (lane == 0) part[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int i = 0; i < nwarps; ++i) total += part[i];  // a broadcast read, same order in every thread
  __syncthreads();
  return total;
}

}  // namespace moe::cuda::ops_detail
