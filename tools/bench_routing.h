// Forced expert choice for benchmarks (`moe bench --routing`): random-weight models route
// however their random routers happen to, so offload figures must state and control it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/engine.h"

namespace moe::cli {

struct RoutingStats {
  // [layer][expert] tokens routed there (all routing modes, measured through the hook).
  std::vector<std::vector<int64_t>> counts;
  // Entropy (nats) of each layer's aggregate expert usage; log(n_experts) is uniform.
  std::vector<double> entropy() const;
};

// spec: "natural" (the model's routers), "uniform", "zipf:S" (expert popularity ~ rank^-S,
// a different random ranking per layer) or "trace:FILE" (JSONL records with "layer" and
// "experts", replayed in order per layer). Installs the override on the engine (none for
// natural) and a hook that fills `stats`. Throws on a malformed spec.
void install_routing(Engine& engine, const std::string& spec, uint64_t seed, RoutingStats* stats);

}  // namespace moe::cli
