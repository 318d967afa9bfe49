// Grouped expert GEMV: every (expert, token group) pair of one MoE layer's projection in one
// launch. For each active expert e with weight W_e [N, K] and its routed pairs i:
//   y[y_rows_e[i], :] = x[x_rows_e[i], :] . W_e^T        (x [T, K], y [Y, N], fp32)
// Same arithmetic as qgemv() (qgemv.h): weights decoded in the inner loop, fp32 accumulation.
//
// Output: one row per (token, slot), chosen by the caller (the engine's layout is
// y_row = t * top_k + slot, so y is [T * top_k, N]); the gate weights and the sum over a
// token's experts stay with the caller (silu_mul then the down projection come first anyway).
// Why not a scatter-add into y [T, N] with the gate weight: that needs atomics, and float
// atomics add in scheduling order, so results would change from run to run. Here every output
// row is written by exactly one warp, once: the result does not depend on scheduling.
//
// Formats: all experts of a layer share dtype, group and [N, K]: Q4 / Q4Z as in qgemv, F8E4M3
// with K % 16 == 0 (the vector path; the per-element path of other K is not grouped). K > 0.
// Work: a block takes up to kQgemvMaxM tokens of one expert and 16 rows of N; an expert with
// n tokens is ceil(n / 8) passes, each reading its weights (the later passes mostly from L2).
//
// The plan is built on the host (the routing is known there) and validated before anything
// is uploaded: std::invalid_argument for mixed formats or shapes, mismatched list lengths, a
// token index outside [0, T), an output row outside [0, Y) or written twice. The upload is a
// synchronous cudaMemcpy; run() is asynchronous on its stream and may be called repeatedly.
// Output rows no pair names are left untouched.
// (C++17-clean: bench_gpu.cu includes it and nvcc builds .cu files as C++17 here.)
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_weight.h"
#include "kernels/cuda/qgemv_grouped_launch.h"

namespace moe::cuda {

// One active expert of the layer and the tokens routed to it.
struct GroupedExpert {
  DeviceWeight w;               // device pointers, [N, K]
  std::vector<int32_t> x_rows;  // [n_e] rows of x [T, K] this expert reads (a token may repeat)
  std::vector<int32_t> y_rows;  // [n_e] the row of y [Y, N] each of them writes
};

class QgemvGrouped {
 public:
  // T: rows of x; Y: rows of y. Experts with no tokens are allowed (and cost nothing).
  QgemvGrouped(const std::vector<GroupedExpert>& experts, int64_t T, int64_t Y);

  // x [T, K], y [Y, N]: device pointers, 16-byte aligned. Throws std::invalid_argument on a
  // null or misaligned pointer (when there is work), std::runtime_error on a CUDA error.
  void run(const float* x, float* y, cudaStream_t stream) const;

  int64_t rows() const { return N_; }   // N
  int64_t cols() const { return K_; }   // K
  int64_t pairs() const { return pairs_; }
  // Weight bytes (data + scales + zero points) of the experts that have tokens: what one run
  // must read at least once.
  int64_t weight_bytes() const { return weight_bytes_; }

 private:
  DType dtype_ = DType::F32;
  int32_t group_ = 0;
  int64_t N_ = 0, K_ = 0, T_ = 0, Y_ = 0, pairs_ = 0, weight_bytes_ = 0;
  int64_t n_items_ = 0;
  DeviceBuffer<detail::GroupedDesc> experts_;  // [active experts]
  DeviceBuffer<detail::GroupedItem> items_;    // [passes]: (expert, first pair, count <= 8)
  DeviceBuffer<int32_t> x_rows_, y_rows_;      // [pairs], expert after expert
};

}  // namespace moe::cuda
