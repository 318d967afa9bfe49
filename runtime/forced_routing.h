// Forced expert choice for benchmarks (`moe bench --routing`): random-weight models route
// however their random routers happen to, so offload figures must state and control it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/engine_api.h"

namespace moe {

struct RoutingStats {
  // [layer][expert] tokens routed there (all routing modes, measured through the hook).
  std::vector<std::vector<int64_t>> counts;
  // Entropy (nats) of each layer's aggregate expert usage; log(n_experts) is uniform.
  std::vector<double> entropy() const;
};

// The choice of --routing uniform|zipf:S as a pure function of (step, layer): the benchmark's
// oracle predictor (--prefetch oracle) reads the future from it.
struct ForcedRouting {
  uint64_t seed = 0;
  std::vector<std::vector<double>> weights;  // [layer][expert] unnormalised popularity
  // ids [n, k]: k distinct experts per token for MoE layer `layer` at forward step `step`.
  void draw(int64_t step, int layer, int n, int k, int32_t* ids) const;
};

// spec: "natural" (the model's routers), "uniform", "zipf:S" (expert popularity ~ rank^-S,
// a different random ranking per layer) or "trace:FILE" (JSONL records with "layer" and
// "experts", replayed in order per layer). Installs the override on the engine (none for
// natural) and a hook that fills `stats`. Throws on a malformed spec. Returns the forced
// routing for uniform and zipf (null otherwise).
std::shared_ptr<const ForcedRouting> install_routing(InferenceEngine& engine, const std::string& spec, uint64_t seed,
                                                     RoutingStats* stats);

}  // namespace moe
