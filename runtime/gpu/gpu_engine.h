// The GPU engine: the CPU engine's interface (runtime/engine.h: sequences, batched forward of
// (sequence, new tokens) items, routing hooks) with the whole forward pass on one CUDA device.
// Dense weights and every sequence's KV cache are resident; routed experts live in the VRAM
// tier's slots (storage/vram/vram_tier.h) under a byte budget, copied in from host memory (the
// model's ExpertSource: an mmap'd checkpoint or the RAM tier over a pack) on a copy stream.
//
// A step per MoE layer: the router's logits come back to the host (one small copy and a
// stream sync per layer), the host routes (cpu::route: the CPU engine's exact rule), runs the
// hooks, acquires the chosen experts (a miss starts its copy; compute waits on that copy's
// event only), and the experts run on the device. An expert's slot is released only once the
// device has finished reading it (after the next sync), so eviction never overwrites a slot in
// use. When the budget covers every expert, all are copied in at start and nothing is evicted.
//
// Not yet: CPU compute for a missed expert (the cost model is storage/vram/miss_cost.h), device-
// side routing and CUDA graphs, sliding-window attention. The grouped expert GEMV is optional
// (grouped_experts) until it has run on a GPU.
#pragma once
#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/cuda/qgemv_grouped.h"
#include "runtime/batch_plan.h"
#include "runtime/engine_api.h"
#include "runtime/gpu/gpu_kv.h"
#include "runtime/gpu/step_times.h"
#include "runtime/gpu/gpu_weights.h"
#include "runtime/model.h"
#include "runtime/routing.h"
#include "runtime/sequence_table.h"
#include "storage/vram/cuda_device.h"
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
  // and chunk of experts (kernels/cuda/qgemv_grouped.h) instead of one launch per expert and
  // projection. Off until it has run on a GPU.
  bool grouped_experts = false;
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
  void set_routing_override(RoutingOverride f) override { override_ = std::move(f); }
  const Model& model() const override { return model_; }
  std::string backend() const override { return "cuda"; }
  int64_t kv_bytes() const override;
  int64_t dense_bytes() const { return weights_.bytes; }
  VramTier& experts() { return *tier_; }
  CudaDevice& device() { return *dev_; }
  GpuStepTimes& step_times() { return times_; }  // callers may reset it: = {}

 private:
  // decode: every item is one token (attention_decode over all sequences in one launch pair).
  void attention(int layer, const BatchPlan& plan, bool decode);
  void ffn(int layer, const BatchPlan& plan);
  void moe(int layer, const BatchPlan& plan);
  void dense_ffn(const Linear& gate, const Linear& up, const Linear& down, int64_t n, int64_t inter, const float* h,
                 float* out);
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
  RoutingOverride override_;
  std::vector<std::pair<int, int>> pending_release_;
  bool grouped_ok_ = false;         // the experts' formats suit the grouped GEMV
  cuda::QgemvGrouped grouped_[3];   // gate, up, down plans (set per chunk, reused)
  std::vector<cuda::GroupedExpert> group_[3];
  GpuStepTimes times_;  // (layer, expert) acquired, kernels maybe queued

  // Scratch, grown to the largest batch and kept (allocation synchronises the device).
  struct Scratch;
  std::unique_ptr<Scratch> s_;
};

}  // namespace moe::gpu
