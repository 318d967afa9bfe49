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
// Formats: all experts of a layer share dtype, group and [N, K]: Q4 / Q4Z and MXFP4 as in qgemv,
// F8E4M3 with K % 16 == 0 (the vector path; the per-element path of other K is not grouped). K > 0.
// Work: a block takes up to kQgemvMaxM tokens of one expert and 16 rows of N; an expert with
// n tokens is ceil(n / 8) passes, each reading its weights (the later passes mostly from L2).
//
// The plan is built on the host (the routing is known there) and validated before anything
// is uploaded: std::invalid_argument for mixed formats or shapes, mismatched list lengths, a
// token index outside [0, T), an output row outside [0, Y) or written twice. run() is
// asynchronous on its stream and may be called repeatedly. Output rows no pair names are left
// untouched.
//
// Re-planning (one object per projection, set() per layer per step):
//   set(experts, T, Y, stream) validates like the constructor (same errors; on an error the
//   previous plan stays), writes the plan (expert descriptors, passes, x_rows, y_rows) into a
//   grow-only page-locked host staging buffer and uploads it with ONE cudaMemcpyAsync on
//   `stream` into a grow-only device buffer. Once the capacity fits (it grows to the largest
//   plan seen, at least doubling), set() allocates nothing (host or device) and does not
//   synchronise: it returns while the upload is still in flight.
// Contract:
//   - The staging is reused: call set() again only once the previous set()'s upload has
//     completed (the engine syncs at each layer's router read-back, after its last run()).
//     As a safety net set() waits on an event recorded after the previous upload; when the
//     contract holds that event has fired and the wait returns at once.
//   - The device plan is overwritten in `stream` order: run() on `stream` after set() sees the
//     new plan, and runs of the old plan queued earlier on `stream` still see the old one. A
//     run() on another stream must be ordered after the upload (and earlier runs on other
//     streams before the next set()) by the caller, e.g. with events.
//   - Growing (a plan larger than any before) is safe but slow: set() waits for the previous
//     upload and synchronises `stream` (so runs of the old plan queued there finish; runs on
//     other streams are the caller's, as above), then frees and reallocates both buffers. The
//     first upload grows too. A decode step's plan (T = 1) is small: after the first steps, or
//     after one set() with the largest plan (e.g. a prefill chunk), nothing grows.
//   - run() reads the plan of the last successful set(). A plan with no pairs uploads nothing
//     and needs no device (set() and run() do not touch CUDA for it).
//   - The constructor is set(experts, T, Y, 0) followed by a synchronisation of stream 0 when
//     something was uploaded: the plan is on the device when it returns, usable on any stream.
//   - Destroying the object waits for its last upload before freeing the staging; runs that
//     read its device plan must be done (as for any DeviceBuffer). Not thread-safe; movable,
//     not copyable.
// (C++17-clean: bench_gpu.cu includes it and nvcc builds .cu files as C++17 here.)
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_weight.h"
#include "kernels/cuda/qgemv_grouped_launch.h"

namespace moe::cuda {

// A layer's expert as set_pairs' device table holds it: device pointers of its data, scales
// (fp16 for Q4/Q4Z, fp32 for F8E4M3, e8m0 bytes for MXFP4) and zero points (Q4Z); dtype and
// shape are the plan's.
using GroupedDesc = detail::GroupedDesc;

// How a plan's run() multiplies. Fp32: the grouped GEMV above (passes of <= 8 tokens, fp32
// activations, the arithmetic of qgemv()). TensorCoreBf16: a tensor-core GEMM (qgemm_tc.cu) over
// blocks of up to 64 of an expert's tokens, x and the decoded weights rounded to bf16, fp32 sums:
// for prompt chunks. The formats of tensor_core_format; sm_80 or newer (tensor_core_gemm_supported).
// Either way a row's result depends only on its token and the weights, never on the other rows.
enum class GroupedMath { Fp32, TensorCoreBf16 };

// Whether `device` runs the TensorCoreBf16 plans (compute capability 8.0 or newer).
bool tensor_core_gemm_supported(int device);
// Whether the tensor-core kernels take weights of w's format and shape: Q4, Q4Z and MXFP4; FP8
// (per-row or 128 x 128 block scales) and INT8 (per-row scales; tc_gemm_rows only: experts are
// never INT8) when K % 32 == 0.
bool tensor_core_format(const DeviceWeight& w);

// y[rows[i], :] = x[rows[i], :] . w^T for the n rows listed on the device (each once), on tensor
// cores as a TensorCoreBf16 plan multiplies (bf16 operands, fp32 sums): a dense weight's prompt
// rows. Other rows of y are untouched. x [*, K], y [*, N] 16-byte aligned. Asynchronous on
// `stream`; no allocation, no host copy. Throws std::invalid_argument for weights
// tensor_core_format refuses or a bad pointer.
void tc_gemm_rows(const DeviceWeight& w, const float* x, float* y, const int32_t* rows, int64_t n, cudaStream_t stream);

// One active expert of the layer and the tokens routed to it.
struct GroupedExpert {
  DeviceWeight w;               // device pointers, [N, K]
  std::vector<int32_t> x_rows;  // [n_e] rows of x [T, K] this expert reads (a token may repeat)
  std::vector<int32_t> y_rows;  // [n_e] the row of y [Y, N] each of them writes
};

namespace detail {

// The grow-only page-locked staging of a QgemvGrouped plan and the event recorded after the
// upload that last read it. Move-only; the destructor waits for that upload, then frees.
class GroupedStaging {
 public:
  GroupedStaging() = default;
  ~GroupedStaging();
  GroupedStaging(GroupedStaging&& o) noexcept { swap(o); }
  GroupedStaging& operator=(GroupedStaging&& o) noexcept {
    swap(o);  // o's destructor waits for and frees what this held
    return *this;
  }
  GroupedStaging(const GroupedStaging&) = delete;
  GroupedStaging& operator=(const GroupedStaging&) = delete;

  // Blocks until the upload recorded last has read the staging; at once when it has.
  void wait() const;
  // Frees and reallocates when smaller than `bytes` (call wait() first); contents are lost.
  void reserve(size_t bytes);
  // Marks the staging as read by what is queued on `stream` so far.
  void record(cudaStream_t stream);
  uint8_t* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  void swap(GroupedStaging& o) noexcept;
  uint8_t* p_ = nullptr;
  size_t n_ = 0;
  cudaEvent_t done_ = nullptr;  // created with the first upload
  bool recorded_ = false;
};

}  // namespace detail

class QgemvGrouped {
 public:
  // An empty plan: run() does nothing until set().
  QgemvGrouped() = default;
  // T: rows of x; Y: rows of y. Experts with no tokens are allowed (and cost nothing).
  // set(experts, T, Y, 0), then waits for the upload (see the contract above).
  QgemvGrouped(const std::vector<GroupedExpert>& experts, int64_t T, int64_t Y);

  // Replaces the plan; asynchronous on `stream`, allocation-free once the capacity fits. See
  // the contract above: the previous set()'s upload must have completed. Throws
  // std::invalid_argument like the constructor (the previous plan then stays), and
  // std::runtime_error on a CUDA error (the plan is then empty).
  // math: see GroupedMath; TensorCoreBf16 also throws std::invalid_argument for weights
  // tensor_core_format refuses (the device's capability is the caller's to check).
  void set(const std::vector<GroupedExpert>& experts, int64_t T, int64_t Y, cudaStream_t stream,
           GroupedMath math = GroupedMath::Fp32);

  // The plan for routing that is already on the device (the GPU engine's decode step with every
  // expert resident: no host round trip). Pair i = t * k + j (i < T * k) reads x row t (x [T, K]:
  // the tokens, for gate and up) or, with x_per_pair, x row i (x [T * k, K]: each pair's own
  // input, for down), and writes y row i (Y = T * k) with the weights table[ids[i]]: one
  // single-token item per pair, exactly the plan set() makes of one GroupedExpert per pair
  // ({w, {t or i}, {i}} in pair order), so both give bit-identical y. `shape` gives every entry's dtype, [N, K] and group (validated as set()
  // validates an expert; its pointers are not used). table: device [E], ids: device [T * k], each
  // in [0, E): not checked (the device router writes them). Asynchronous: a kernel on `stream`
  // writes the plan, in stream order with run(). No staging, no host copy; grows (and then
  // synchronises `stream`) like set() when T * k is the largest plan yet. weight_bytes() counts
  // every pair's weights (an upper bound: the host does not know which experts repeat).
  void set_pairs(const GroupedDesc* table, const int32_t* ids, int64_t T, int k, bool x_per_pair,
                 const DeviceWeight& shape, cudaStream_t stream);
  // set_pairs of up to 3 distinct plans (a layer's gate, up and down) from the same ids, in one
  // launch. Every plan is validated before any changes (the same errors as set_pairs).
  struct PairPlan {
    const GroupedDesc* table;
    bool x_per_pair;
    DeviceWeight shape;
  };
  static void set_pairs(QgemvGrouped* const* plans, const PairPlan* p, int n, const int32_t* ids, int64_t T, int k,
                        cudaStream_t stream);

  // x [T, K], y [Y, N]: device pointers, 16-byte aligned. Throws std::invalid_argument on a
  // null or misaligned pointer (when there is work), std::runtime_error on a CUDA error.
  void run(const float* x, float* y, cudaStream_t stream) const;

  int64_t rows() const { return N_; }   // N
  int64_t cols() const { return K_; }   // K
  int64_t pairs() const { return pairs_; }
  GroupedMath math() const { return math_; }
  // Weight bytes (data + scales + zero points) of the experts that have tokens: what one run
  // must read at least once.
  int64_t weight_bytes() const { return weight_bytes_; }
  // Bytes of the plan's staging and device buffers (each): grows only.
  size_t capacity_bytes() const { return plan_.size(); }
  // Where the device plan lives (run() bakes it into its launch: a CUDA graph key).
  const void* plan_address() const { return plan_.get(); }

 private:
  DType dtype_ = DType::F32;
  GroupedMath math_ = GroupedMath::Fp32;
  int32_t group_ = 0;
  int64_t N_ = 0, K_ = 0, T_ = 0, Y_ = 0, pairs_ = 0, weight_bytes_ = 0;
  int64_t n_items_ = 0;
  // One device allocation, byte offsets 16-aligned:
  //   [active experts] GroupedDesc | [passes] GroupedItem (expert, first pair, count <= 8, or 64) |
  //   [pairs] x_rows | [pairs] y_rows (pairs expert after expert)
  DeviceBuffer<uint8_t> plan_;
  size_t items_at_ = 0, x_rows_at_ = 0, y_rows_at_ = 0;
  detail::GroupedStaging staging_;  // same layout and size as plan_
  // set_pairs' host half, after validation: grows plan_, sets the shape; false without pairs.
  bool prepare_pairs(const PairPlan& p, int64_t T, int k, cudaStream_t stream, detail::PairPlanArgs* out);
  std::vector<uint8_t> written_;    // [Y] set()'s scratch: output rows already named
};

}  // namespace moe::cuda
