// Predictors on hand-built routers and routing sequences, with expected rankings computed
// here independently of the predictor code.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "prefetch/gate_predictor.h"
#include "prefetch/history_predictor.h"

namespace moe {
namespace {

WeightView f32(const std::vector<float>& v, int64_t rows, int64_t cols) {
  WeightView w;
  w.dtype = DType::F32;
  w.data = v.data();
  w.rows = rows;
  w.cols = cols;
  return w;
}

TEST(MoeLayers, NextSkipsDenseLayers) {
  const MoeLayers m({0, 8, 0, 8, 8});
  EXPECT_EQ(m.next(0, 1), 1);
  EXPECT_EQ(m.next(1, 1), 3);
  EXPECT_EQ(m.next(1, 2), 4);
  EXPECT_EQ(m.next(3, 2), -1);
  EXPECT_EQ(m.next(4, 1), -1);
}

TEST(RankScores, BestFirstWithoutZeros) {
  const LayerPrediction p = rank_scores(3, 2, {0.1f, 0.0f, 0.5f, 0.2f});
  EXPECT_EQ(p.layer, 3);
  EXPECT_EQ(p.distance, 2);
  EXPECT_EQ(p.experts, (std::vector<int32_t>{2, 3, 0}));
}

// Three layers, the middle one dense: from layer 0, distance 1 is layer 2.
struct GateFixture {
  static constexpr int64_t H = 12, E = 6;
  std::vector<float> norm0, norm2, r0, r2, residual;
  GateFixture() {
    std::mt19937 g(7);
    std::normal_distribution<float> n(0.0f, 1.0f);
    for (int64_t i = 0; i < H; ++i) norm0.push_back(1.0f + 0.1f * n(g)), norm2.push_back(1.0f + 0.3f * n(g));
    for (int64_t i = 0; i < E * H; ++i) r0.push_back(n(g)), r2.push_back(n(g));
    for (int64_t i = 0; i < 2 * H; ++i) residual.push_back(n(g));  // two tokens
  }
  std::unique_ptr<GatePredictor> predictor() const {
    return std::make_unique<GatePredictor>(
        std::vector<LayerRouter>{{f32(norm0, 1, H), f32(r0, E, H)}, {}, {f32(norm2, 1, H), f32(r2, E, H)}}, 1e-6f);
  }
  // softmax(r2 . rmsnorm(x) * norm2) averaged over the tokens, computed directly.
  std::vector<float> expected() const {
    std::vector<float> s(E, 0.0f);
    for (int t = 0; t < 2; ++t) {
      const float* x = &residual[size_t(t * H)];
      double ss = 0;
      for (int64_t i = 0; i < H; ++i) ss += double(x[i]) * x[i];
      const double inv = 1.0 / std::sqrt(ss / H + 1e-6);
      std::vector<double> z(E);
      for (int64_t e = 0; e < E; ++e)
        for (int64_t i = 0; i < H; ++i) z[size_t(e)] += double(r2[size_t(e * H + i)]) * x[i] * inv * norm2[size_t(i)];
      const double mx = *std::max_element(z.begin(), z.end());
      double sum = 0;
      for (double& v : z) sum += (v = std::exp(v - mx));
      for (int64_t e = 0; e < E; ++e) s[size_t(e)] += float(z[size_t(e)] / sum / 2);
    }
    return s;
  }
};

RoutingEvent event(int layer, int T, int K, const std::vector<int32_t>& experts, const std::vector<float>& weights,
                   const std::vector<int32_t>& seq, const std::vector<int32_t>& pos, const float* residual = nullptr) {
  RoutingEvent ev;
  ev.layer = layer;
  ev.n_tokens = T;
  ev.top_k = K;
  ev.experts = experts.data();
  ev.weights = weights.data();
  ev.seq_ids = seq.data();
  ev.positions = pos.data();
  ev.residual = residual;
  return ev;
}

TEST(GatePredictor, AppliesTheNextMoeLayersNormAndRouter) {
  GateFixture f;
  auto p = f.predictor();
  const std::vector<int32_t> ex = {0, 1, 2, 3}, seq = {0, 0}, pos = {4, 5};
  const std::vector<float> w = {0.5f, 0.5f, 0.5f, 0.5f};
  std::vector<LayerPrediction> out;
  p->predict(event(0, 2, 2, ex, w, seq, pos, f.residual.data()), 2, out);
  ASSERT_EQ(out.size(), 1u);  // only one MoE layer after layer 0
  EXPECT_EQ(out[0].layer, 2);
  EXPECT_EQ(out[0].distance, 1);
  const std::vector<float> want = f.expected();
  ASSERT_EQ(out[0].experts.size(), size_t(GateFixture::E));
  for (size_t i = 0; i < out[0].experts.size(); ++i) EXPECT_NEAR(out[0].scores[i], want[size_t(out[0].experts[i])], 1e-5);
  for (size_t i = 1; i < out[0].scores.size(); ++i) EXPECT_GE(out[0].scores[i - 1], out[0].scores[i]);
}

// Wide routers stored in 16/32-bit are read from an int8 copy: scores stay within a small
// error of the exact ones and the top of the ranking is the same.
TEST(GatePredictor, Int8RouterCopyKeepsTheRanking) {
  constexpr int64_t H = 256, E = 16;
  std::mt19937 g(11);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> norm(H, 1.0f), r0(E * H), r1(E * H), x(H);
  for (auto& v : r0) v = n(g);
  for (auto& v : r1) v = 0.2f * n(g);
  for (auto& v : x) v = n(g);
  GatePredictor p({{f32(norm, 1, H), f32(r0, E, H)}, {f32(norm, 1, H), f32(r1, E, H)}}, 1e-6f);
  const std::vector<int32_t> ex = {0, 1}, seq = {0}, pos = {0};
  const std::vector<float> w = {0.5f, 0.5f};
  std::vector<LayerPrediction> out;
  p.predict(event(0, 1, 2, ex, w, seq, pos, x.data()), 1, out);
  ASSERT_EQ(out.size(), 1u);
  // Exact: softmax(r1 . rmsnorm(x)).
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  const double inv = 1.0 / std::sqrt(ss / H + 1e-6);
  std::vector<double> z(E);
  for (int64_t e = 0; e < E; ++e)
    for (int64_t i = 0; i < H; ++i) z[size_t(e)] += double(r1[size_t(e * H + i)]) * x[size_t(i)] * inv;
  const double mx = *std::max_element(z.begin(), z.end());
  double sum = 0;
  for (double& v : z) sum += (v = std::exp(v - mx));
  const int best = int(std::max_element(z.begin(), z.end()) - z.begin());
  EXPECT_EQ(out[0].experts[0], best);
  for (size_t i = 0; i < out[0].experts.size(); ++i)
    EXPECT_NEAR(out[0].scores[i], z[size_t(out[0].experts[i])] / sum, 0.02);
}

TEST(GatePredictor, RefusesEventsWithoutTheResidualStream) {
  GateFixture f;
  auto p = f.predictor();
  const std::vector<int32_t> ex = {0, 1}, seq = {0}, pos = {0};
  const std::vector<float> w = {0.5f, 0.5f};
  std::vector<LayerPrediction> out;
  EXPECT_THROW(p->predict(event(0, 1, 2, ex, w, seq, pos), 1, out), std::invalid_argument);
}

// A 3-layer model with 8 experts, top-1: layer 1 picks map1[e0], layer 2 picks map2[e0].
void feed(HistoryPredictor& h, int steps, const std::vector<int>& map1, const std::vector<int>& map2, int pos0) {
  std::mt19937 g(3);
  for (int s = 0; s < steps; ++s) {
    const int e0 = int(g() % 8);
    const std::vector<int32_t> seq = {0}, pos = {pos0 + s};
    const std::vector<float> w = {1.0f};
    const std::vector<int32_t> a = {e0}, b = {map1[size_t(e0)]}, c = {map2[size_t(e0)]};
    h.observe(event(0, 1, 1, a, w, seq, pos));
    h.observe(event(1, 1, 1, b, w, seq, pos));
    h.observe(event(2, 1, 1, c, w, seq, pos));
  }
}

TEST(HistoryPredictor, LearnsLayerToLayerTransitionsAtEachDistance) {
  HistoryPredictor h({8, 8, 8}, 2);
  const std::vector<int> map1 = {3, 0, 6, 1, 7, 2, 5, 4}, map2 = {5, 5, 0, 2, 1, 7, 3, 6};
  feed(h, 400, map1, map2, 0);
  for (int e0 = 0; e0 < 8; ++e0) {
    const std::vector<int32_t> a = {e0}, seq = {0}, pos = {9999};
    const std::vector<float> w = {1.0f};
    std::vector<LayerPrediction> out;
    h.predict(event(0, 1, 1, a, w, seq, pos), 2, out);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].layer, 1);
    EXPECT_EQ(out[0].experts.at(0), map1[size_t(e0)]);
    EXPECT_EQ(out[1].layer, 2);
    EXPECT_EQ(out[1].experts.at(0), map2[size_t(e0)]);
  }
}

TEST(HistoryPredictor, DecayLetsANewPatternWin) {
  HistoryPredictor h({8, 8, 8}, 1, /*half_life=*/16);
  std::vector<int> old_map(8), new_map(8);
  std::iota(old_map.begin(), old_map.end(), 0);
  for (int e = 0; e < 8; ++e) new_map[size_t(e)] = (e + 3) % 8;
  const std::vector<int> unused(8, 0);
  feed(h, 300, old_map, unused, 0);
  feed(h, 200, new_map, unused, 1000);  // 200 steps = 12 half-lives
  const std::vector<int32_t> a = {2}, seq = {0}, pos = {5000};
  const std::vector<float> w = {1.0f};
  std::vector<LayerPrediction> out;
  h.predict(event(0, 1, 1, a, w, seq, pos), 1, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].experts.at(0), new_map[2]);
}

TEST(HistoryPredictor, PairsOnlyTheSameTokens) {
  HistoryPredictor h({4, 4}, 1);
  const std::vector<float> w = {1.0f};
  for (int s = 0; s < 50; ++s) {  // layer 1's events come from a different sequence: never paired
    const std::vector<int32_t> a = {1}, b = {2}, s0 = {0}, s1 = {1}, pos = {s};
    h.observe(event(0, 1, 1, a, w, s0, pos));
    h.observe(event(1, 1, 1, b, w, s1, pos));
  }
  const std::vector<int32_t> a = {1}, seq = {0}, pos = {0};
  std::vector<LayerPrediction> out;
  h.predict(event(0, 1, 1, a, w, seq, pos), 1, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].experts.empty());
}

TEST(BlendPredictor, EndpointsAreTheTwoPredictors) {
  GateFixture f;
  const std::vector<int32_t> ex = {0, 1, 2, 3}, seq = {0, 0}, pos = {4, 5};
  const std::vector<float> w = {0.5f, 0.5f, 0.5f, 0.5f};
  const RoutingEvent ev = event(0, 2, 2, ex, w, seq, pos, f.residual.data());
  std::vector<LayerPrediction> gate_only, blended;
  f.predictor()->predict(ev, 1, gate_only);
  auto b = make_blend_predictor(f.predictor(),
                                std::make_unique<HistoryPredictor>(std::vector<int>{6, 0, 6}, 1), 1.0f, 6);
  b->predict(ev, 1, blended);
  ASSERT_EQ(blended.size(), 1u);
  EXPECT_EQ(blended[0].experts, gate_only[0].experts);
  EXPECT_THROW(make_blend_predictor(nullptr, nullptr, 1.5f, 6), std::invalid_argument);
}

}  // namespace
}  // namespace moe
