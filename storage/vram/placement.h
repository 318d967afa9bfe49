// Where the model goes on this machine: how much VRAM the experts get after the dense
// weights, the KV cache and a headroom, and how much RAM the RAM tier gets. With no flags
// the plan comes from what the machine has; --vram-budget / --ram-budget override either.
//
// It lives in storage/vram because it only does byte arithmetic over the tiers' budgets; the
// caller (tools/, from the model's config) says how many bytes are dense, experts and KV per
// token, so nothing here knows layers or heads.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

struct MachineInfo {
  uint64_t vram_total = 0, vram_free = 0;  // 0: no GPU
  uint64_t ram_total = 0, ram_available = 0;
};

struct ModelBytes {
  uint64_t dense_bytes = 0;     // attention, norms, embeddings, LM head, shared experts
  uint64_t expert_bytes = 0;    // all routed experts: what "100%" of a budget means
  uint64_t largest_expert = 0;  // one slot
  int top_k = 1;                // experts one step pins at once
  uint64_t kv_bytes_per_token = 0;  // K and V over all layers
};

struct PlacementFlags {
  std::optional<std::string> vram_budget, ram_budget;  // "6GiB" | "50%" (of expert bytes)
  // --vram-limit: plan as if the GPU had only this many bytes (a 24 GB card on an 80 GB one):
  // dense weights, KV, headroom and expert slots all fit under it.
  std::optional<std::string> vram_limit;
  // KV cache reserved for context x batch tokens. The session passes neither yet: its plans assume
  // 4096 x 1, while the GPU engine's KV grows as its sequences do (storage/vram/README.md).
  int context = 4096, batch = 1;
  bool cpu_only = false;          // run on the CPU even with a GPU
  uint64_t vram_headroom = 0;     // 0: max(512 MiB, 5% of VRAM): CUDA context, workspaces, activations
  uint64_t ram_headroom = 0;      // 0: max(2 GiB, 10% of RAM): the OS and everything else
  uint64_t staging_bytes = 0;     // pinned staging for copies; 0: 4 experts (GPU only)
};

struct Placement {
  bool gpu = false;
  uint64_t vram_limit = 0;  // --vram-limit in bytes (0: none)
  uint64_t kv_bytes = 0;
  uint64_t vram_headroom = 0, ram_headroom = 0;
  uint64_t vram_budget = 0;  // expert slots on the GPU
  uint64_t ram_budget = 0;   // the RAM tier (experts)
  uint64_t staging_bytes = 0;
  bool vram_from_flag = false, ram_from_flag = false;
  bool all_in_vram = false;  // every expert fits the VRAM budget: no cache machinery runs
  bool all_in_ram = false;   // every expert fits the RAM tier: nothing read from disk after warm-up
  std::vector<std::string> warnings;  // flags that exceed what the machine has
};

// Throws std::invalid_argument, one line (what is needed, what is available, which flag to
// change), when the model cannot run at all: the GPU (or --vram-limit) cannot hold dense + KV +
// one step's experts, or RAM cannot hold one step's experts (+ dense + KV on the CPU); and when
// --vram-budget does not fit under --vram-limit.
Placement plan_placement(const MachineInfo& m, const ModelBytes& b, const PlacementFlags& f);

// Several lines: the machine, then what goes in VRAM, RAM and on disk, and where each figure
// came from (auto or a flag), then warnings.
std::string format_plan(const Placement& p, const MachineInfo& m, const ModelBytes& b, const PlacementFlags& f);

// parse_budget (storage/tier/budget.h) with the flag's own name in its error.
uint64_t parse_vram_budget(std::string_view text, uint64_t total_expert_bytes);

// Host memory from /proc/meminfo (MemTotal, MemAvailable); the GPU fields stay 0 (the device
// fills them: DeviceMemory::free_bytes / total_bytes). parse_meminfo takes the file's text and
// throws std::runtime_error when MemTotal or MemAvailable is missing.
MachineInfo parse_meminfo(std::string_view text);
MachineInfo probe_host_memory();

}  // namespace moe
