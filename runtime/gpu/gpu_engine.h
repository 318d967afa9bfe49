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
// kernel, so results do not depend on the budget. Prefill, unquantized experts and routers the
// device lacks (sigmoid scores, correction biases, group limits, scaling: DeepSeek-V3, GLM-4.5)
// route on the host (cpu::route_ex, router_spec.h). An expert's slot is released only once the device has finished reading it
// (after the next sync), so eviction never overwrites a slot in use.
//
// Which of these a step does is decided once per forward (step_plan.h); the experts' residency,
// tables and CPU misses are ExpertDispatch's (expert_dispatch.h).
//
// A hybrid model's (Qwen3-Next / 3.5) gated DeltaNet layers keep each sequence's recurrent state
// beside the attention layers' KV (gpu_kv.h); its steps run without CUDA graphs.
#pragma once
#include <cuda_runtime_api.h>

#include <array>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/cuda/ops.h"
#include "kernels/cuda/qgemv_grouped.h"
#include "runtime/batch_plan.h"
#include "runtime/engine_api.h"
#include "runtime/gpu/cuda_device.h"
#include "runtime/gpu/expert_dispatch.h"
#include "runtime/gpu/gpu_kv.h"
#include "runtime/gpu/gpu_options.h"
#include "runtime/gpu/gpu_weights.h"
#include "runtime/gpu/graph_cache.h"
#include "runtime/gpu/phase_profile.h"
#include "runtime/gpu/step_plan.h"
#include "runtime/gpu/step_times.h"
#include "runtime/model.h"
#include "runtime/routing.h"
#include "runtime/sequence_table.h"
#include "storage/vram/miss_cost.h"
#include "storage/vram/vram_tier.h"

namespace moe::gpu {

// Why the GPU engine cannot run `model` (empty when it can): a family, shape or expert format
// its kernels lack, said so a person knows to run on the CPU. The constructor throws it.
std::string unsupported_reason(const Model& model);

class GpuEngine final : public InferenceEngine {
 public:
  // Uploads the dense weights and sets up the expert slots (copying every expert in when the
  // budget covers them). Throws std::invalid_argument for what the GPU path does not support
  // (sliding-window attention, a head_dim the attention kernels lack), a budget below one
  // step's top_k experts or an opts.ram_tier that is not model.experts; std::runtime_error when
  // the device lacks memory.
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
  using InferenceEngine::forward;
  std::vector<float> forward(std::span<const BatchItem> batch) override;

  void add_routing_hook(RoutingHook hook) override { hooks_.push_back(std::move(hook)); }
  // Delivered at once where the host routes anyway; for decode steps with every expert resident,
  // after the step (one copy of every layer's ids and weights).
  void add_routing_observer(RoutingHook observer) override { observers_.push_back(std::move(observer)); }
  void set_routing_override(RoutingOverride f) override { override_ = std::move(f); }
  const Model& model() const override { return model_; }
  std::string backend() const override { return "cuda"; }
  int64_t kv_bytes() const override;
  int64_t kv_bytes_per_token() const override { return model_.cfg.kv_bytes_per_token(); }  // fp32 rows
  int64_t dense_bytes() const { return weights_.bytes; }
  // The expert slots; only for a model with routed experts (as the three below).
  VramTier& experts() { return dispatch_->tier(); }
  CudaDevice& device() { return *dev_; }
  GpuStepTimes& step_times() { return times_; }  // callers may reset it: = {}
  // With cpu_misses: the calibration in use and how often each path was taken (resettable).
  const MissCalibration& miss_calibration() const { return dispatch_->calibration(); }
  MissPathCounts& miss_counts() { return dispatch_->miss_counts(); }
  bool cpu_misses() const { return dispatch_ && dispatch_->cpu_misses(); }
  // Whether decode steps run their experts from the device tables with no host round trip.
  bool device_routed() const { return device_router_ && dispatch_ && dispatch_->device_tables(); }

 private:
  // What forward's plan is made of: this step's shape and what the engine has (step_plan.h).
  StepInputs step_inputs(bool decode, int64_t T) const;
  // decode: every item is one token (attention_decode over all sequences in one launch pair).
  void attention(int layer, const BatchPlan& plan, bool decode);
  void mla_attention(int layer, const BatchPlan& plan, bool decode);  // gpu_mla.cpp: DeepSeek's
  void linear_attention(int layer, const BatchPlan& plan);            // gpu_linear.cpp: gated DeltaNet
  // A hybrid model's sequence back to n tokens: the nearest snapshot at or before n, then the
  // tokens after it recomputed (as Engine::rewind).
  void rewind(SeqId seq, int64_t n);
  void ffn(int layer, const BatchPlan& plan, const StepPlan& step);
  // gpu_moe.cpp: the routed experts as step.route says: routed on the device, one grouped launch
  // per projection over (token, expert) pairs (moe_pairs), or on the host, experts grouped by
  // expert (moe_general); then the shared expert.
  void moe(int layer, const BatchPlan& plan, const StepPlan& step);
  // The device's routing: router GEMM and top-k into dids / dwts [layer].
  void route_on_device(int layer, int64_t T);
  void moe_pairs(int layer, const BatchPlan& plan, const StepPlan& step);
  // A device-routed layer's ids and weights read back (host_route) once the device is done, the
  // override applied (and written back), hooks and observers told; returns the ids.
  const int32_t* routing_to_host(int layer, const BatchPlan& plan);
  // Hooks (with h and x, the host copies of the router's input and the residual), then
  // observers (without them), of one layer's routing [T, top_k].
  void tell_routing(int layer, const BatchPlan& plan, const int32_t* ids, const float* wts, const float* h,
                    const float* x);
  void moe_general(int layer, const BatchPlan& plan);
  void shared_expert(int layer, int64_t T);
  // Every (token, expert) pair of the layer's routing (dids) through tab (device descriptors and
  // each projection's format, validated): plans written on the device, then gate, up,
  // SiLU-multiply and down into y rows t * k + j.
  void pairs_on_device(int layer, int64_t T, const ExpertTable& tab);
  // One expert's rows [row, row + n) of g / u and of y (gpt-oss's biases are added by them).
  struct ExpertRows {
    int expert;
    int64_t row, n;
  };
  // A chunk's experts, planned in group_ and group_tc_ (gate, up, down): gate and up read x [x_rows, H] into
  // rows of g / u [gu_rows, I], the activation on rows [r0, r1), down reads g into y [y_rows, H].
  // `biased`: the experts' rows when the layer has expert biases (added after each projection).
  void grouped_swiglu(int layer, const float* x, int64_t x_rows, int64_t gu_rows, int64_t r0, int64_t r1,
                      int64_t y_rows, const std::vector<ExpertRows>& biased = {});
  // g = act(g, u) over n floats: SiLU(g) * u, or gpt-oss's clamped SwiGLU.
  void activate(float* g, const float* u, int64_t n);
  // b's row `expert` ([E, width]) added to n rows of `rows` ([n, width]).
  void add_expert_bias(const cuda::DeviceBuffer<float>& b, int expert, int64_t width, float* rows, int64_t n);
  void dense_ffn(const Linear& gate, const Linear& up, const Linear& down, int64_t n, int64_t inter, const float* h,
                 float* out);
  std::vector<const void*> graph_key(int64_t T, int64_t R) const;
  // Ends the interval of `phase` in a profiled step (GpuEngineOptions::phase_profile); else nothing.
  void mark(const char* phase) { phases_.mark(phase, stream_); }
  void sync();  // waits for the compute stream, then releases the experts it was reading

  const Model& model_;
  GpuEngineOptions opts_;
  std::unique_ptr<CudaDevice> dev_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::DenseGemm> gemm_;
  GpuWeights weights_;
  GpuStepTimes times_;
  PhaseProfile phases_;
  std::unique_ptr<ExpertDispatch> dispatch_;  // null without routed experts; after dev_: freed before it
  cuda::DeviceBuffer<float> inv_freq_;  // [rotary_dim / 2]
  std::vector<cuda::RouterRule> router_rules_;  // per layer (MoE layers only), for route_on_device
  bool device_router_ = false;  // cuda::router_route computes every MoE layer's routing (router_spec.h)
  SequenceTable<GpuKv> seqs_;
  std::vector<RoutingHook> hooks_;
  std::vector<RoutingHook> observers_;
  RoutingOverride override_;
  cuda::QgemvGrouped grouped_[3];  // gate, up, down plans (set per chunk, reused)
  std::vector<cuda::GroupedExpert> group_[3];
  // The same for prompt tokens on tensor cores (GpuEngineOptions::tensor_core_prompts): empty
  // unless that option is on and the step has a prompt chunk.
  cuda::QgemvGrouped grouped_tc_[3];
  std::vector<cuda::GroupedExpert> group_tc_[3];
  // This step's rows (tensor_core_prompts, a step with a prompt chunk): per row whether its item
  // brings more than one token; their count (listed in Scratch::prompt_rows); the runs
  // [first, first + n) of the other rows. Empty / 0 otherwise.
  int64_t step_tokens_ = 0;
  std::vector<uint8_t> prompt_token_;
  int64_t prompt_rows_ = 0;
  std::vector<std::pair<int64_t, int64_t>> other_runs_;
  void plan_prompt_rows(const BatchPlan& plan);
  // A dense projection over the step's rows: apply(), except that a quantized weight the tensor
  // cores take runs the prompt rows there (cuda::tc_gemm_rows) and the other runs by the GEMV.
  void apply_rows(const Linear& l, const float* x, int64_t M, float* y);
  int decode_max_len_ = 0;  // this decode step's attention bound (a multiple of 256)
  // Slot 0: a whole decode step; 1 + l: layer l's attention-and-routing segment; 1 + layers + l:
  // its experts from the step table; each keyed by graph_key(T, step_rows_) when it replays.
  std::unique_ptr<GraphCache> graphs_;
  int64_t step_rows_ = 0;  // this step's logit rows

  // Scratch, grown to the largest batch and kept (allocation synchronises the device).
  struct Scratch;
  std::unique_ptr<Scratch> s_;
};

}  // namespace moe::gpu
