// Where the GPU engine's routed experts live and run: the VRAM tier of expert slots and the
// records it copies from, the device descriptor tables (every expert resident) or a layer's
// step table (a partial budget), the experts acquired this step until the device is done with
// them, and misses computed on the CPU (the pool, the cost model's calibration, the counts).
//
// The MoE layer (gpu_moe.cpp) reads router -> dispatch -> grouped GEMV -> combine: it asks
// split() where each routed expert runs, acquire() / stage() for slot weights the compute
// stream may read, run_on_cpu() for the rest. An acquired expert stays pinned until
// release_pending(), which the engine calls only after a stream sync that covers every kernel
// reading it, so eviction never overwrites a slot in use.
#pragma once
#include <cuda_runtime_api.h>

#include <array>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "kernels/cpu/thread_pool.h"
#include "kernels/cuda/qgemv_grouped.h"
#include "runtime/gpu/cuda_device.h"
#include "runtime/gpu/gpu_options.h"
#include "runtime/gpu/pinned_buffer.h"
#include "runtime/gpu/step_times.h"
#include "runtime/model.h"
#include "storage/vram/expert_records.h"
#include "storage/vram/miss_cost.h"
#include "storage/vram/miss_split.h"
#include "storage/vram/vram_tier.h"

namespace moe::gpu {

using SlotWeights = std::array<cuda::DeviceWeight, 3>;  // gate, up, down of one expert in its slot

// A layer's experts for device-planned pairs (QgemvGrouped::set_pairs): [gate, up, down][E]
// descriptors on the device, and one expert's weight per projection (the format and shape
// set_pairs validates).
struct ExpertTable {
  const cuda::GroupedDesc* descs = nullptr;
  SlotWeights shape{};
};

class ExpertDispatch {
 public:
  // Sets up the slots (copying every expert in when the budget covers them), the tables, and
  // with o.cpu_misses and a partial budget the CPU pool and its calibration. `stream`: the
  // compute stream that waits on copies; `times`: where acquire time is added. Throws as
  // VramTier does (a budget below top_k experts, no device memory).
  ExpertDispatch(const Model& m, const GpuEngineOptions& o, CudaDevice& dev, cudaStream_t stream, GpuStepTimes& times);
  ExpertDispatch(const ExpertDispatch&) = delete;
  ExpertDispatch& operator=(const ExpertDispatch&) = delete;

  VramTier& tier() { return *tier_; }
  // The experts' formats suit the grouped GEMV, and it is on (GpuEngineOptions::grouped_experts).
  bool grouped() const { return grouped_; }
  // Every expert resident and grouped: device_table() serves every layer, no host round trip.
  bool device_tables() const { return tables_.size() > 0; }
  ExpertTable device_table(int layer) const;

  // Pins (layer, expert), lists it for release_pending() at once (so it is released even if
  // what follows throws), makes the compute stream wait for its copy (that copy only) and
  // returns its weights in the slot.
  SlotWeights acquire(int layer, int expert);
  // acquire() of split.gpu, their descriptors (and, for split.cpu, the first one's: the GPU
  // computes harmless rows the CPU's replace) uploaded to the step table on the stream. Only
  // after a sync that covers the previous upload (the layer's routing read-back).
  ExpertTable stage(int layer, const MissSplit& split);
  // Releases every listed expert (each once, even if one throws). Only after a sync of the
  // compute stream that covers every kernel reading them.
  void release_pending();
  // Whether a layer's slots may stay pinned until the next layer's sync: the budget spares them
  // (every expert resident, or room for two steps' top_k). Otherwise each chunk syncs at once.
  bool defer_release() const { return defer_release_; }

  // Routed experts -> where each runs: all on the GPU, or with cpu_misses the cost model's choice.
  MissSplit split(int layer, std::span<const RoutedExpert> routed);
  // The CPU's share of a decode step: each expert's pairs (rows i of pairs[e], token i / K) from
  // h [T, H] on the host through cpu::swiglu_ffn, results staged in y_host [T * K, H] (pinned)
  // and copied to the same rows of y_dev on the stream. Their copies are queued as prefetches
  // first, so later steps find them resident.
  void run_on_cpu(int layer, std::span<const int> experts, const std::vector<std::vector<int32_t>>& pairs, int K,
                  const float* h, float* y_host, float* y_dev);
  bool cpu_misses() const { return cpu_pool_ != nullptr; }
  const MissCalibration& calibration() const { return calib_; }
  MissPathCounts& miss_counts() { return miss_counts_; }

  const void* step_table_address() const { return step_table_.get(); }  // baked into captured graphs

 private:
  void build_device_tables();
  MissCalibration calibrate_misses();  // the link and the CPU's expert speed, measured now

  const Model& model_;
  CudaDevice& dev_;
  cudaStream_t stream_;
  GpuStepTimes& times_;
  int n_experts_ = 1;  // descriptors per projection in a table (router.n_experts, at least 1)
  std::unique_ptr<ExpertRecords> records_;  // RecordSource, or TierRecordSource for a pack
  std::unique_ptr<VramTier> tier_;          // after records_: destroyed before them
  bool grouped_ = false;
  bool defer_release_ = false;
  std::vector<std::pair<int, int>> pending_release_;  // (layer, expert) acquired, kernels maybe queued
  // [layer][gate, up, down][expert] descriptors when every expert is resident, and per layer
  // one expert's weights (table_shape_).
  cuda::DeviceBuffer<cuda::GroupedDesc> tables_;
  std::vector<SlotWeights> table_shape_;
  // A partial budget's per-layer descriptors ([gate, up, down][E]), staged in host_tab_.
  cuda::DeviceBuffer<cuda::GroupedDesc> step_table_;
  PinnedBuffer host_tab_;
  std::unique_ptr<ThreadPool> cpu_pool_;  // cpu_misses with a partial budget
  MissCalibration calib_;
  MissPathCounts miss_counts_;
};

}  // namespace moe::gpu
