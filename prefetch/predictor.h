// Expert predictors: from what layer L just routed, guess which experts the next MoE layers
// will need, so the scheduler can start loading them while layer L computes.
//
// A predictor sees every routing event (runtime/routing.h). predict() ranks candidate
// experts for the d-th next MoE layer, d = 1..lookahead; observe() lets a predictor learn from
// the routing that actually happened. Both run on the compute thread inside the routing
// hook, so they must be cheap next to a layer's expert FFN.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/routing.h"

namespace moe {

// The ranked guess for one future MoE layer-step, best first.
struct LayerPrediction {
  int layer = 0;     // decoder layer predicted
  int distance = 0;  // 1: the next MoE layer, 2: the one after, ...
  std::vector<int32_t> experts;
  std::vector<float> scores;  // [experts.size()] predicted share of the step's routing, summing to <= 1
};

class Predictor {
 public:
  virtual ~Predictor() = default;
  virtual std::string name() const = 0;
  // Appends one LayerPrediction per future MoE layer (up to `lookahead`; fewer near the end).
  virtual void predict(const RoutingEvent& ev, int lookahead, std::vector<LayerPrediction>& out) = 0;
  // The routing that actually happened at ev.layer (called after predict for the same event).
  virtual void observe(const RoutingEvent&) {}
};

// Which decoder layers have routed experts, in order: MoE layer i is layers[i].
class MoeLayers {
 public:
  explicit MoeLayers(std::vector<int> n_experts_per_layer);  // 0 for dense layers
  // The d-th MoE layer after `layer` (d >= 1), or -1.
  int next(int layer, int d) const;
  int n_experts(int layer) const { return n_experts_[size_t(layer)]; }
  int n_layers() const { return int(n_experts_.size()); }

 private:
  std::vector<int> n_experts_;
  std::vector<int> moe_;    // decoder layer of each MoE layer
  std::vector<int> index_;  // [n_layers] position in moe_ (-1 for dense)
};

// Sorts scores [n] into a prediction, best first, dropping zero scores.
LayerPrediction rank_scores(int layer, int distance, const std::vector<float>& scores);

// Blends two predictors' normalised scores: alpha * a + (1 - alpha) * b, per layer.
std::unique_ptr<Predictor> make_blend_predictor(std::unique_ptr<Predictor> a, std::unique_ptr<Predictor> b, float alpha,
                                                int max_experts);

}  // namespace moe
