#include "prefetch/history_predictor.h"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace moe {

HistoryPredictor::HistoryPredictor(std::vector<int> n_experts, int max_distance, double half_life)
    : layers_(n_experts), max_d_(max_distance), growth_(float(std::pow(2.0, 1.0 / half_life))) {
  if (max_distance < 1) throw std::invalid_argument(fmt::format("history predictor: distance {} must be >= 1", max_distance));
  if (!(half_life > 0)) throw std::invalid_argument("history predictor: half-life must be > 0");
  moe_index_.assign(n_experts.size(), -1);
  for (size_t l = 0; l < n_experts.size(); ++l)
    if (n_experts[l] > 0) {
      moe_index_[l] = int(moe_layers_.size());
      moe_layers_.push_back(int(l));
    }
  pairs_.resize(moe_layers_.size() * size_t(max_d_));
  for (size_t i = 0; i < moe_layers_.size(); ++i)
    for (int d = 1; d <= max_d_; ++d) {
      const int dst = layers_.next(moe_layers_[i], d);
      if (dst < 0) continue;
      Pair& p = pairs_[i * size_t(max_d_) + size_t(d - 1)];
      const int es = n_experts[size_t(moe_layers_[i])], ed = n_experts[size_t(dst)];
      p.counts.assign(size_t(es) * size_t(ed), 0.0f);
      p.rows.assign(size_t(es), 0.0f);
    }
  last_.resize(n_experts.size());
}

HistoryPredictor::Pair& HistoryPredictor::pair(int src, int d) {
  return pairs_[size_t(moe_index_[size_t(src)]) * size_t(max_d_) + size_t(d - 1)];
}

int HistoryPredictor::prev(int layer, int d) const {
  const int i = moe_index_[size_t(layer)] - d;
  return i >= 0 ? moe_layers_[size_t(i)] : -1;
}

void HistoryPredictor::predict(const RoutingEvent& ev, int lookahead, std::vector<LayerPrediction>& out) {
  if (!known(ev.layer)) return;
  for (int d = 1; d <= std::min(lookahead, max_d_); ++d) {
    const int t = layers_.next(ev.layer, d);
    if (t < 0) break;
    const Pair& p = pair(ev.layer, d);
    const int ed = layers_.n_experts(t);
    scores_.assign(size_t(ed), 0.0f);
    for (int i = 0; i < ev.n_tokens; ++i)
      for (int j = 0; j < ev.top_k; ++j) {
        const int32_t e = ev.experts[i * ev.top_k + j];
        const float w = ev.weights[i * ev.top_k + j], rs = p.rows[size_t(e)];
        if (rs <= 0.0f) continue;
        const float* row = &p.counts[size_t(e) * size_t(ed)];
        for (int x = 0; x < ed; ++x) scores_[size_t(x)] += w * row[x] / rs / float(ev.n_tokens);
      }
    out.push_back(rank_scores(t, d, scores_));
  }
}

void HistoryPredictor::observe(const RoutingEvent& ev) {
  if (!known(ev.layer)) return;
  const int K = ev.top_k, T = ev.n_tokens;
  for (int d = 1; d <= max_d_; ++d) {
    const int s = prev(ev.layer, d);
    if (s < 0) break;
    const Last& a = last_[size_t(s)];
    // Pair only the same tokens: the earlier layer must have seen exactly this step.
    if (a.seq.size() != size_t(T) || !std::equal(a.seq.begin(), a.seq.end(), ev.seq_ids) ||
        !std::equal(a.pos.begin(), a.pos.end(), ev.positions))
      continue;
    Pair& p = pair(s, d);
    const int ed = layers_.n_experts(ev.layer);
    p.inc *= growth_;
    if (p.inc > 1e30f) {  // rescale before float overflow; ratios are unchanged
      for (float& c : p.counts) c /= p.inc;
      for (float& r : p.rows) r /= p.inc;
      p.inc = 1.0f;
    }
    const int ka = int(a.experts.size()) / std::max(T, 1);
    for (int i = 0; i < T; ++i)
      for (int ja = 0; ja < ka; ++ja) {
        const int32_t src = a.experts[size_t(i * ka + ja)];
        for (int j = 0; j < K; ++j) p.counts[size_t(src) * size_t(ed) + size_t(ev.experts[i * K + j])] += p.inc;
        p.rows[size_t(src)] += p.inc * float(K);
      }
  }
  Last& me = last_[size_t(ev.layer)];
  me.experts.assign(ev.experts, ev.experts + T * K);
  me.seq.assign(ev.seq_ids, ev.seq_ids + T);
  me.pos.assign(ev.positions, ev.positions + T);
}

}  // namespace moe
