// How a GpuEngine is set up (runtime/gpu/gpu_engine.h), and what those options mean for the
// expert slots (the CLI sizes budgets with it before building the engine). No CUDA header here.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "runtime/model.h"
#include "storage/tier/tiered_experts.h"
#include "storage/vram/miss_cost.h"

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
  // The pack's RAM tier when model.experts is one (the session passes it); enables direct
  // records. Passed in rather than found by casting model.experts: the caller knows what it
  // built. Must be model.experts itself (the constructor checks); null: RecordSource.
  TieredExperts* ram_tier = nullptr;
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
  // Decode steps time their phases on the device (runtime/gpu/phase_profile.h; GpuStepTimes::
  // phase_s): attention's parts, norms, router, experts, LM head. Such steps launch every
  // kernel (no graphs), so they run slower than without it.
  bool phase_profile = false;
  // Hybrid models: a snapshot of each sequence's recurrent state every this many tokens, where a
  // fork or truncate restarts (EngineOptions::state_snapshot_every's meaning and default).
  int64_t state_snapshot_every = 256;
  // Hybrid models: runs of at least this many tokens (prompts) take the chunked delta rule in
  // chunks of this size (kernels/cuda/deltanet.h, <= 64); 0: token by token always (the default,
  // until a GPU session measures which is faster).
  int deltanet_chunk = 0;
  // Tokens of prompt chunks (items of more than one new token) run their Q4 / Q4Z / FP8 / MXFP4
  // experts through the tensor-core GEMM (kernels/cuda/qgemm_tc.cu: x and weights rounded to bf16,
  // fp32 sums) instead of the fp32 grouped GEMV. Which path a token takes depends on its own item
  // only, never on the other sequences of the step, and not on the budget. Needs sm_80 and grouped_experts; not
  // with wide16 (exact mode). Off until a GPU session has measured it (written without one).
  bool tensor_core_prompts = false;
};

// Whether the engine copies `m`'s experts to VRAM as the pack's own records straight from the RAM
// tier (TierRecordSource): o.ram_tier is m.experts and holds every expert, direct_ram on, wide16 off.
bool uses_direct_records(const Model& m, const GpuEngineOptions& o);
// One expert's bytes in a VRAM slot with these options, before the slot's rounding: what
// --vram-budget N% and the placement plan count.
uint64_t expert_slot_bytes(const Model& m, const GpuEngineOptions& o);

}  // namespace moe::gpu
