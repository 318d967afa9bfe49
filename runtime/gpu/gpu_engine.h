// The GPU engine: the CPU engine's interface (runtime/engine.h: sequences, batched forward of
// (sequence, new tokens) items, routing hooks) with the whole forward pass on one CUDA device.
// Dense weights and every sequence's KV cache are resident; routed experts live in the VRAM
// tier's slots (storage/vram/vram_tier.h) under a byte budget, copied in from host memory (the
// model's ExpertSource: an mmap'd checkpoint or the RAM tier over a pack) on a copy stream.
//
// A MoE layer (gpu_moe.cpp) in a decode step with quantized experts: the device routes
// (cuda::router_topk). With every expert resident (and no hooks) the experts run from device
// tables with no host round trip at all, and the whole step is replayed as a CUDA graph.
// Otherwise the chosen ids come back to the host (one small copy and a stream sync per layer),
// the host runs the hooks and acquires the experts (a miss starts its copy; compute waits on
// that copy's event only) or, with cpu_misses, runs a missed expert on the CPU when the cost
// model says that is sooner; the experts' descriptors go to a step table and each layer's
// segments are replayed as graphs. Both run every (token, expert) pair through the same grouped
// kernel, so results do not depend on the budget. Prefill and unquantized experts route on the
// host (cpu::route). An expert's slot is released only once the device has finished reading it
// (after the next sync), so eviction never overwrites a slot in use.
//
// Not yet: sliding-window attention.
#pragma once
#include <cuda_runtime_api.h>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kernels/cuda/qgemv_grouped.h"
#include "runtime/batch_plan.h"
#include "runtime/engine_api.h"
#include "runtime/gpu/gpu_kv.h"
#include "runtime/gpu/graph_cache.h"
#include "runtime/gpu/step_times.h"
#include "runtime/gpu/gpu_weights.h"
#include "runtime/model.h"
#include "runtime/routing.h"
#include "runtime/sequence_table.h"
#include "kernels/cpu/thread_pool.h"
#include "storage/vram/cuda_device.h"
#include "storage/vram/miss_cost.h"
#include "storage/vram/record_source.h"
#include "storage/vram/tier_record_source.h"
#include "storage/vram/vram_tier.h"

namespace moe::gpu {

struct GpuEngineOptions {
  int device = 0;
  int64_t max_seq_len = 0;         // 0: the model's max_position_embeddings
  uint64_t vram_budget_bytes = 0;  // expert slots; 0: every expert resident
  std::string policy = "lru";      // eviction policy of the slots (make_policy)
  double prefetch_share = 0.5;     // VramOptions::prefetch_share
  // F16/BF16 weights (dense and experts) widened to F32 on the device, so every product takes
  // fp32 activations as on the CPU (cuBLAS otherwise rounds them to the weight's 16-bit type):
  // the exact mode the CPU-parity tests use; twice the bytes of those weights.
  bool wide16 = false;
  // A pack's experts (the RAM tier) are copied to the GPU as their decoded records, straight
  // from the RAM tier's buffers (TierRecordSource: no repacking, no staging copy). false: repack
  // them like any other source (RecordSource).
  bool direct_ram = true;
  // Quantized experts (Q4/Q4Z, FP8 with K % 16 == 0) run as one grouped GEMV launch per projection
  // (kernels/cuda/qgemv_grouped.h), and decode routes on the device, instead of one launch per
  // expert and projection with host routing (false: for comparisons).
  bool grouped_experts = true;
  // A decode step's missed expert may run on the CPU (from the host expert source, activations
  // shipped instead of weights) when the cost model (storage/vram/miss_cost.h) says that is
  // sooner than its copy. Off by default: the CPU kernels round activations to int8 for Q4, so
  // the tokens may then depend on the budget and on timing. Only with a partial budget.
  bool cpu_misses = false;
  std::optional<MissCalibration> miss_calibration = std::nullopt;  // instead of measuring at start-up (tests)
  int cpu_threads = 0;                              // for CPU misses; 0: the physical cores
  // Decode steps that need nothing from the host (every expert resident, grouped, no hooks)
  // replay a captured CUDA graph: one launch instead of ~20 a layer; other decode steps replay
  // each layer's segments (runtime/gpu/graph_cache.h). Recaptured when the batch shape, a buffer
  // or the 256-position attention bound changes; a new key runs once as it is. Results are
  // bit-identical either way.
  bool cuda_graphs = true;
};

// Whether the engine copies `m`'s experts to VRAM as the pack's own records straight from the RAM
// tier (TierRecordSource): a pack whose RAM tier holds every expert, direct_ram on, wide16 off.
bool uses_direct_records(const Model& m, const GpuEngineOptions& o);
// One expert's bytes in a VRAM slot with these options, before the slot's rounding: what
// --vram-budget N% and the placement plan count.
uint64_t expert_slot_bytes(const Model& m, const GpuEngineOptions& o);

class GpuEngine final : public InferenceEngine {
 public:
  // Uploads the dense weights and sets up the expert slots (copying every expert in when the
  // budget covers them). Throws std::invalid_argument for what the GPU path does not support
  // (sliding-window attention, a head_dim the attention kernels lack) or a budget below one
  // step's top_k experts; std::runtime_error when the device lacks memory.
  explicit GpuEngine(const Model& model, GpuEngineOptions opts = {});
  ~GpuEngine() override;
  GpuEngine(const GpuEngine&) = delete;
  GpuEngine& operator=(const GpuEngine&) = delete;

  SeqId create_sequence() override;
  SeqId fork_sequence(SeqId src, int64_t n) override;
  void truncate(SeqId seq, int64_t n) override;
  void free_sequence(SeqId seq) override;
  int64_t length(SeqId seq) const override;
  size_t n_sequences() const override { return seqs_.size(); }

  // As Engine::forward: logits [rows, vocab] on the host, rows in item order.
  std::vector<float> forward(std::span<const BatchItem> batch) override;

  void add_routing_hook(RoutingHook hook) override { hooks_.push_back(std::move(hook)); }
  // Delivered at once where the host routes anyway; for decode steps with every expert resident,
  // after the step (one copy of every layer's ids and weights).
  void add_routing_observer(RoutingHook observer) override { observers_.push_back(std::move(observer)); }
  void set_routing_override(RoutingOverride f) override { override_ = std::move(f); }
  const Model& model() const override { return model_; }
  std::string backend() const override { return "cuda"; }
  int64_t kv_bytes() const override;
  int64_t dense_bytes() const { return weights_.bytes; }
  VramTier& experts() { return *tier_; }
  CudaDevice& device() { return *dev_; }
  GpuStepTimes& step_times() { return times_; }  // callers may reset it: = {}
  // With cpu_misses: the calibration in use and how often each path was taken (resettable).
  const MissCalibration& miss_calibration() const { return calib_; }
  MissPathCounts& miss_counts() { return miss_counts_; }
  bool cpu_misses() const { return cpu_pool_ != nullptr; }
  // Whether decode steps run their experts from the device tables with no host round trip.
  bool device_routed() const { return tables_.size() > 0; }

 private:
  // decode: every item is one token (attention_decode over all sequences in one launch pair).
  void attention(int layer, const BatchPlan& plan, bool decode);
  void ffn(int layer, const BatchPlan& plan, bool decode);
  // gpu_moe.cpp: the routed experts of a decode step with quantized experts (device routing,
  // one grouped launch per projection over (token, expert) pairs), or any other step (host
  // routing, experts grouped by expert); then the shared expert.
  void moe(int layer, const BatchPlan& plan, bool decode);
  // Whether layer's experts run per pair from routing on the device (decode, quantized experts,
  // T <= kPairMaxTokens), and that routing: router GEMM and top-k into dids / dwts [layer].
  bool routes_on_device(int layer, const BatchPlan& plan, bool decode) const;
  void route_on_device(int layer, int64_t T);
  void moe_pairs(int layer, const BatchPlan& plan);
  void moe_general(int layer, const BatchPlan& plan);
  void shared_expert(int layer, int64_t T);
  // Every (token, expert) pair of the layer's routing (dids) through tab ([gate, up, down][E]
  // device descriptors; shape: each projection's format, validated): plans written on the
  // device, then gate, up, SiLU-multiply and down into y rows t * k + j.
  void pairs_on_device(int layer, int64_t T, const cuda::GroupedDesc* tab, const std::array<cuda::DeviceWeight, 3>& shape);
  // A chunk's experts, planned in group_ (gate, up, down): gate and up read x [x_rows, H] into
  // rows of g / u [gu_rows, I], SiLU-and-multiply on rows [r0, r1), down reads g into y [y_rows, H].
  void grouped_swiglu(const float* x, int64_t x_rows, int64_t gu_rows, int64_t r0, int64_t r1, int64_t y_rows);
  // The missed experts of a decode step chosen for the CPU: their pairs' rows of y.
  void run_on_cpu(int layer, std::span<const int> experts, const std::vector<std::vector<int32_t>>& pairs, int K);
  void build_device_tables();  // every expert resident: the descriptors set_pairs reads
  MissCalibration calibrate_misses();  // the link and the CPU's expert speed, measured now
  void dense_ffn(const Linear& gate, const Linear& up, const Linear& down, int64_t n, int64_t inter, const float* h,
                 float* out);
  // Whether this step's MoE layers route and plan on the device (decode, every expert resident,
  // no hooks or override), and whether the whole step needs no host round trip (then it may be
  // replayed as a CUDA graph).
  bool experts_on_device(const BatchPlan& plan, bool decode) const;
  bool host_free(const BatchPlan& plan, bool decode) const;
  std::vector<const void*> graph_key(int64_t T, int64_t R) const;
  void sync();             // waits for the compute stream, then releases experts it was reading
  void release_pending();  // experts whose kernels have finished

  const Model& model_;
  GpuEngineOptions opts_;
  std::unique_ptr<CudaDevice> dev_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::DenseGemm> gemm_;
  GpuWeights weights_;
  std::unique_ptr<ExpertRecords> records_;  // RecordSource, or TierRecordSource for a pack
  std::unique_ptr<VramTier> tier_;
  cuda::DeviceBuffer<float> inv_freq_;
  SequenceTable<GpuKv> seqs_;
  std::vector<RoutingHook> hooks_;
  std::vector<RoutingHook> observers_;
  RoutingOverride override_;
  std::vector<std::pair<int, int>> pending_release_;
  bool grouped_ok_ = false;         // the experts' formats suit the grouped GEMV
  cuda::QgemvGrouped grouped_[3];   // gate, up, down plans (set per chunk, reused)
  std::vector<cuda::GroupedExpert> group_[3];
  GpuStepTimes times_;  // (layer, expert) acquired, kernels maybe queued
  // [layer][gate, up, down][expert] descriptors when every expert is resident, and per layer
  // one expert's weight per projection (the format and shape set_pairs validates).
  cuda::DeviceBuffer<cuda::GroupedDesc> tables_;
  std::vector<std::array<cuda::DeviceWeight, 3>> table_shape_;
  int decode_max_len_ = 0;  // this decode step's attention bound (a multiple of 256)
  // Slot 0: a whole decode step; 1 + l: layer l's attention-and-routing segment; 1 + layers + l:
  // its experts from the step table. step_key_ / step_segments_: this step's key and whether its
  // segments are replayed.
  std::unique_ptr<GraphCache> graphs_;
  std::vector<const void*> step_key_;
  bool step_segments_ = false;
  // A partial budget's per-layer descriptors ([gate, up, down][E]), written from host_tab.
  cuda::DeviceBuffer<cuda::GroupedDesc> step_table_;
  std::unique_ptr<ThreadPool> cpu_pool_;  // cpu_misses with a partial budget
  MissCalibration calib_;
  MissPathCounts miss_counts_;

  // Scratch, grown to the largest batch and kept (allocation synchronises the device).
  struct Scratch;
  std::unique_ptr<Scratch> s_;
};

}  // namespace moe::gpu
