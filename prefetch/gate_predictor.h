// Early routing: the next MoE layers' own routers applied to the current residual stream.
// The residual stream changes little from one layer to the next (each layer adds a small
// update), so router(L+d) applied to layer L's hidden state after attention is a good guess
// of what layer L+d will choose: a few small matmuls per step, no training. The anchors
// report 60-97% recall for this method; it is our default.
#pragma once
#include <vector>

#include "kernels/cpu/thread_pool.h"
#include "prefetch/predictor.h"
#include "quant/quantize.h"
#include "quant/weight_view.h"

namespace moe {

struct LayerRouter {
  WeightView norm;    // [H] the layer's pre-FFN RMSNorm weight
  WeightView router;  // [n_experts, H]; empty for dense layers
};

class GatePredictor final : public Predictor {
 public:
  // routers: [n_layers]. Needs events carrying `residual` (the engine provides it).
  // Routers stored with 2 or 4 bytes per weight are kept as an int8 copy (per-row scales):
  // predicting reads every router of the next `lookahead` layers per step, and that read,
  // not arithmetic, is the cost (1 MiB per fp32 router of Qwen3-30B-A3B). A guess does not
  // need the last bits of the logits.
  GatePredictor(std::vector<LayerRouter> routers, float rms_eps);
  std::string name() const override { return "gate"; }
  void predict(const RoutingEvent& ev, int lookahead, std::vector<LayerPrediction>& out) override;

 private:
  std::vector<LayerRouter> routers_;     // views used by predict (into compact_/norms_ when copied)
  std::vector<QuantizedMatrix> compact_;  // [n_layers] int8 copies (empty when not needed)
  std::vector<std::vector<float>> norms_;  // [n_layers] norm weights widened once
  MoeLayers layers_;
  float eps_;
  ThreadPool pool_{1};  // inline: the hook runs on the compute thread, between its parallel sections
  std::vector<float> normed_, probs_, scores_;
};

}  // namespace moe
