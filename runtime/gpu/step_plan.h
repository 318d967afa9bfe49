// What one GPU forward step does, decided once from the step's shape and the engine's
// capabilities, so the engine's parts read one plan instead of re-deriving it (runtime/gpu/
// gpu_engine.cpp computes it at the top of forward; gpu_moe.cpp and the graph replay read it).
// Plain host logic without CUDA: built into moe_runtime and unit-tested without a GPU.
//
// The rules:
// - A MoE layer routes on the device (cuda::router_topk) in a decode step of at most
//   pair_max_tokens tokens when the experts suit the grouped GEMV and the model's router is the
//   plain softmax one; otherwise on the host (cpu::route_ex over the router's logits read back:
//   sigmoid scores, correction biases, group limits and scaling are the host's).
// - Its experts also run from the device tables, with no host round trip, when every expert is
//   resident (the tables are built) and nothing on the host must see the routing first (no
//   hooks, no override).
// - A decode step that never needs the host between layers (experts on the device, or no routed
//   experts at all) replays as one CUDA graph; any other decode step replays each layer's
//   segments; prefill never uses graphs.
// - Observers of a step whose routing stayed on the device get every layer's routing after the
//   step (one read-back) instead of layer by layer.
#pragma once
#include <cstdint>
#include <vector>

namespace moe::gpu {

struct StepInputs {
  bool decode = false;          // one new token per item, each its own sequence
  int64_t tokens = 0;           // the step's tokens
  int64_t pair_max_tokens = 0;  // the most tokens a step may run per (token, expert) pair
  bool grouped = false;         // the experts suit the grouped GEMV and it is on (grouped_experts)
  bool device_router = false;   // cuda::router_topk computes the model's routing (router_spec.h)
  bool device_tables = false;   // every expert resident, its descriptor tables built (implies grouped)
  bool has_tier = false;        // the model has routed experts (a VRAM tier)
  bool hooks = false;           // routing hooks registered
  bool override_ = false;       // a routing override set
  bool observers = false;       // routing observers registered
  bool cuda_graphs = false;     // GpuEngineOptions::cuda_graphs
  std::vector<bool> moe_layer;  // [layers]: whether the layer has routed experts
};

enum class RouteSite : uint8_t {
  None,    // a dense layer
  Device,  // router GEMM and top-k on the device, experts per (token, expert) pair
  Host,    // router logits to the host, cpu::route, experts grouped by expert
};

enum class GraphMode : uint8_t {
  None,       // run as it is
  WholeStep,  // the whole step is one captured graph
  Segments,   // each layer's attention-and-routing segment and its experts are graphs
};

struct StepPlan {
  bool decode = false;
  std::vector<RouteSite> route;    // [layers]
  bool experts_on_device = false;  // device-routed layers run from the device tables (no round trip)
  GraphMode graphs = GraphMode::None;
  bool deferred_observers = false;  // observers read every layer's routing once, after the step
};

StepPlan plan_step(const StepInputs& in);

}  // namespace moe::gpu
