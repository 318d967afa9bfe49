// Early routing: the next MoE layers' own routers applied to the current residual stream.
// The residual stream changes little from one layer to the next (each layer adds a small
// update), so router(L+d) applied to layer L's hidden state after attention is a good guess
// of what layer L+d will choose: a few small matmuls per step, no training. The anchors
// report 60-97% recall for this method; it is our default.
#pragma once
#include <vector>

#include "kernels/cpu/thread_pool.h"
#include "prefetch/predictor.h"
#include "quant/weight_view.h"

namespace moe {

struct LayerRouter {
  WeightView norm;    // [H] the layer's pre-FFN RMSNorm weight
  WeightView router;  // [n_experts, H]; empty for dense layers
};

class GatePredictor final : public Predictor {
 public:
  // routers: [n_layers]. Needs events carrying `residual` (the engine provides it).
  GatePredictor(std::vector<LayerRouter> routers, float rms_eps);
  std::string name() const override { return "gate"; }
  void predict(const RoutingEvent& ev, int lookahead, std::vector<LayerPrediction>& out) override;

 private:
  std::vector<LayerRouter> routers_;
  MoeLayers layers_;
  float eps_;
  ThreadPool pool_{1};  // inline: the hook runs on the compute thread, between its parallel sections
  std::vector<float> normed_, probs_, scores_;
};

}  // namespace moe
