// One value with everything a session can report: the RAM tier, prefetch and routing figures,
// and on the GPU the VRAM slots, step times and miss paths. A snapshot (plain data), so the
// CLI, the server's metrics and batch reports print it without seeing a tier or a device.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/gpu/step_times.h"
#include "storage/tier/tier_stats.h"

namespace moe {

struct PrefetchReport {
  std::string mode = "off";  // the mode in force ("off" when no controller runs)
  bool controller = false;   // a controller is attached (predictions, figures, trace)
  bool prefetching = false;  // and it moves experts
  int lookahead = 0;
  struct Recall {
    int distance = 0;
    double at_k = 0, at_2k = 0, gated_share = 0;
    uint64_t samples = 0;
  };
  std::vector<Recall> recall;  // per lookahead distance
  uint64_t issued = 0, cancelled = 0, skipped_present = 0, batches = 0, max_inflight_bytes = 0,
           deferred_for_demand = 0;
  double hook_s = 0;                               // compute-thread time in the prefetch hook
  std::vector<double> router_entropy;              // [layer] nats; 0 for dense layers
  std::vector<std::vector<int64_t>> expert_tokens;  // [layer][expert]
};

struct VramReport {
  uint64_t budget_bytes = 0, slots = 0, all_experts = 0;
  bool all_resident = false;
  uint64_t hits = 0, inflight_hits = 0, misses = 0, bytes_copied = 0, prefetch_copies = 0, prefetch_used = 0,
           prefetch_wasted = 0, waits = 0;
};

// --cpu-misses: how often each path was taken, and the start-up calibration it decided with.
struct MissReport {
  uint64_t waited = 0, on_cpu = 0, tokens_waited = 0, tokens_on_cpu = 0;
  double link_bytes_per_s = 0, link_latency_s = 0, cpu_fixed_s = 0, cpu_per_token_s = 0;
  double cpu_share() const { return waited + on_cpu ? double(on_cpu) / double(waited + on_cpu) : 0.0; }
};

struct GpuReport {
  uint64_t dense_device_bytes = 0;
  gpu::GpuStepTimes times;
  bool device_routed = false;      // decode experts planned on the device
  std::optional<VramReport> vram;  // the model has routed experts
  std::optional<MissReport> misses;
  double link_bytes_per_s = 0, link_latency_s = 0;  // PCIe host -> device, when measured
};

struct SessionStats {
  std::string backend;           // "cpu" or "cuda"
  std::optional<TierStats> ram;  // a pack's RAM tier
  PrefetchReport prefetch;
  std::optional<GpuReport> gpu;

  // The keys of `moe bench --json` (docs/bench.md) that come from the session: the RAM tier's
  // (tier_stats_json, or a resident model's defaults), prefetch's and the GPU's. `tokens`
  // divides per-token figures; `tok_s` (the measured decode rate) relates copies to the PCIe bound.
  nlohmann::json json(uint64_t tokens, double tok_s = 0) const;
  nlohmann::json prefetch_json(uint64_t tokens) const;
  nlohmann::json gpu_json(uint64_t tokens, double tok_s) const;  // {} on the CPU
  // Lines for --stats: RAM tier, prefetch and routing, GPU, process memory.
  std::string format(uint64_t tokens) const;
};

// gpu_json's `gpu_phases` (--gpu-phases) as " | device ms per decode step, eager (total): phase ms
// (share) ...", largest first; "" without them. For --stats and the bench line alike.
std::string format_gpu_phases(const nlohmann::json& j);

}  // namespace moe
