#include "prefetch/predictor.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include <fmt/format.h>

namespace moe {

MoeLayers::MoeLayers(std::vector<int> n) : n_experts_(std::move(n)), index_(n_experts_.size(), -1) {
  for (size_t l = 0; l < n_experts_.size(); ++l)
    if (n_experts_[l] > 0) {
      index_[l] = int(moe_.size());
      moe_.push_back(int(l));
    }
}

int MoeLayers::next(int layer, int d) const {
  if (layer < 0 || layer >= n_layers() || d < 1) return -1;
  // The first MoE layer after `layer`, then d - 1 more.
  auto it = std::upper_bound(moe_.begin(), moe_.end(), layer);
  const ptrdiff_t i = (it - moe_.begin()) + (d - 1);
  return i < ptrdiff_t(moe_.size()) ? moe_[size_t(i)] : -1;
}

LayerPrediction rank_scores(int layer, int distance, const std::vector<float>& scores) {
  LayerPrediction p{layer, distance, {}, {}};
  std::vector<int32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return scores[size_t(a)] > scores[size_t(b)]; });
  for (int32_t e : order) {
    if (!(scores[size_t(e)] > 0.0f)) break;
    p.experts.push_back(e);
    p.scores.push_back(scores[size_t(e)]);
  }
  return p;
}

namespace {

class BlendPredictor final : public Predictor {
 public:
  BlendPredictor(std::unique_ptr<Predictor> a, std::unique_ptr<Predictor> b, float alpha, int max_experts)
      : a_(std::move(a)), b_(std::move(b)), alpha_(alpha), max_experts_(max_experts) {}
  std::string name() const override { return "blend"; }
  void predict(const RoutingEvent& ev, int lookahead, std::vector<LayerPrediction>& out) override {
    pa_.clear();
    pb_.clear();
    a_->predict(ev, lookahead, pa_);
    b_->predict(ev, lookahead, pb_);
    for (const LayerPrediction& x : pa_) {
      std::vector<float> s(size_t(max_experts_), 0.0f);
      add(s, x, alpha_);
      for (const LayerPrediction& y : pb_)
        if (y.layer == x.layer) add(s, y, 1.0f - alpha_);
      out.push_back(rank_scores(x.layer, x.distance, s));
    }
  }
  void observe(const RoutingEvent& ev) override {
    a_->observe(ev);
    b_->observe(ev);
  }

 private:
  void add(std::vector<float>& s, const LayerPrediction& p, float w) {
    float sum = 0.0f;
    for (float v : p.scores) sum += v;
    if (sum <= 0.0f) return;
    for (size_t i = 0; i < p.experts.size(); ++i)
      if (size_t(p.experts[i]) < s.size()) s[size_t(p.experts[i])] += w * p.scores[i] / sum;
  }
  std::unique_ptr<Predictor> a_, b_;
  float alpha_;
  int max_experts_;
  std::vector<LayerPrediction> pa_, pb_;
};

}  // namespace

std::unique_ptr<Predictor> make_blend_predictor(std::unique_ptr<Predictor> a, std::unique_ptr<Predictor> b, float alpha,
                                                int max_experts) {
  if (!(alpha >= 0.0f && alpha <= 1.0f)) throw std::invalid_argument(fmt::format("blend weight {} must be in [0, 1]", alpha));
  return std::make_unique<BlendPredictor>(std::move(a), std::move(b), alpha, max_experts);
}

}  // namespace moe
