// History: which experts of layer L+d followed which experts of layer L for the same token,
// counted online during the run with exponential decay (recent text weighs most). Predicts
// layer L+d from the experts layer L actually chose, weighted by their gate weights. Needs
// no model weights, so it also works where the router input is not available; blended with
// early routing (make_blend_predictor) it adds what the routers cannot see.
#pragma once
#include <vector>

#include "prefetch/predictor.h"

namespace moe {

class HistoryPredictor final : public Predictor {
 public:
  // n_experts: [n_layers], 0 for dense layers. Learns pairs up to `max_distance` MoE layers
  // apart; a pair's counts halve every `half_life` steps that update it.
  HistoryPredictor(std::vector<int> n_experts, int max_distance, double half_life = 256);
  std::string name() const override { return "history"; }
  void predict(const RoutingEvent& ev, int lookahead, std::vector<LayerPrediction>& out) override;
  void observe(const RoutingEvent& ev) override;

 private:
  struct Pair {
    std::vector<float> counts;  // [E_src, E_dst]
    std::vector<float> rows;    // [E_src] row sums
    float inc = 1.0f;           // grows instead of decaying every count (rescaled when large)
  };
  struct Last {  // a layer's latest routing, to pair with the layers after it in the same step
    std::vector<int32_t> experts, seq, pos;
  };
  Pair& pair(int src, int d);
  int prev(int layer, int d) const;
  bool known(int layer) const { return layer >= 0 && layer < layers_.n_layers() && moe_index_[size_t(layer)] >= 0; }

  MoeLayers layers_;
  int max_d_;
  float growth_;
  std::vector<int> moe_index_;  // [n_layers] index among MoE layers, -1 for dense
  std::vector<int> moe_layers_;
  std::vector<Pair> pairs_;  // [n_moe * max_d]
  std::vector<Last> last_;   // [n_layers]
  std::vector<float> scores_;
};

}  // namespace moe
