// Benchmarks only: a predictor that knows the forced routing of the steps ahead
// (`moe bench --routing uniform|zipf:S --prefetch oracle`). It measures the prefetch
// machinery alone (scheduler, tier, overlap), with prediction quality taken out: the figure
// a perfect predictor would reach on the same disk and CPU.
#pragma once
#include <memory>
#include <vector>

#include "prefetch/predictor.h"
#include "runtime/forced_routing.h"

namespace moe {

class OraclePredictor final : public Predictor {
 public:
  OraclePredictor(std::shared_ptr<const ForcedRouting> routing, std::vector<int> n_experts)
      : routing_(std::move(routing)), layers_(n_experts), n_experts_(std::move(n_experts)) {}
  std::string name() const override { return "oracle"; }
  void predict(const RoutingEvent& ev, int lookahead, std::vector<LayerPrediction>& out) override {
    if (ev.layer <= last_) ++step_;  // counted like the routing override counts
    last_ = ev.layer;
    for (int d = 1; d <= lookahead; ++d) {
      const int t = layers_.next(ev.layer, d);
      if (t < 0) break;
      ids_.resize(size_t(ev.n_tokens) * size_t(ev.top_k));
      routing_->draw(step_, t, ev.n_tokens, ev.top_k, ids_.data());
      std::vector<float> s(static_cast<size_t>(n_experts_[static_cast<size_t>(t)]), 0.0f);
      for (int32_t e : ids_) s[size_t(e)] += 1.0f / float(ids_.size());
      out.push_back(rank_scores(t, d, s));
    }
  }

 private:
  std::shared_ptr<const ForcedRouting> routing_;
  MoeLayers layers_;
  std::vector<int> n_experts_;
  std::vector<int32_t> ids_;
  int64_t step_ = -1;
  int last_ = 1 << 30;
};

}  // namespace moe
