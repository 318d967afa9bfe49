// The routing hook: after each MoE layer's router, the engine reports what it chose.
// Expert caches, predictors and tracing subscribe here; the engine knows none of them.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

namespace moe {

struct RoutingEvent {
  int layer = 0;              // decoder layer index
  int n_tokens = 0;           // tokens in this batched step
  int top_k = 0;
  const int32_t* experts = nullptr;    // [n_tokens, top_k] chosen expert ids, best first
  const float* weights = nullptr;      // [n_tokens, top_k] gate weights applied to them
  const int32_t* seq_ids = nullptr;    // [n_tokens] sequence of each token
  const int32_t* positions = nullptr;  // [n_tokens] position of each token in its sequence
  const float* hidden = nullptr;       // [n_tokens, hidden] the router's input (normed)
  const float* residual = nullptr;     // [n_tokens, hidden] the residual stream after attention, before
                                       // the FFN norm (early-routing predictors apply later layers' norms)
};

using RoutingHook = std::function<void(const RoutingEvent&)>;
// An observer (statistics, tracing) takes the same event but needs it neither at once nor with
// the activations: an engine may deliver it after the step's forward() (layers in order), with
// hidden and residual null. A hook, unlike an observer, costs the GPU engine a host round trip
// per layer; an observer costs it one copy per step.

// Benchmarks only: replaces the router's choice. Called after the natural routing with
// experts/weights [n_tokens, top_k] filled in; may overwrite both.
using RoutingOverride = std::function<void(int layer, int n_tokens, int top_k, int32_t* experts, float* weights)>;

// Per layer, the entropy (nats) of how tokens spread over the experts, from counts
// [layer][expert]; log(n_experts) is uniform, 0 for a layer with no tokens.
inline std::vector<double> usage_entropy(const std::vector<std::vector<int64_t>>& counts) {
  std::vector<double> out;
  for (const auto& row : counts) {
    double n = 0, h = 0;
    for (int64_t c : row) n += double(c);
    for (int64_t c : row)
      if (c > 0) h -= double(c) / n * std::log(double(c) / n);
    out.push_back(h);
  }
  return out;
}

}  // namespace moe
