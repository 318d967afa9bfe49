// The routers of DeepSeek-V2/V3 and GLM-4.5 (kernels/cpu/routing.h) on hand-made logits whose
// right answer is known: the bias steers the choice but not the weights, groups exclude
// experts a plain top-k would take, renormalisation and the routed scaling apply last.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "kernels/cpu/routing.h"

using moe::cpu::route_ex;
using moe::cpu::RouterSpec;

namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

std::set<int> chosen(const std::vector<int32_t>& ids) { return {ids.begin(), ids.end()}; }

}  // namespace

TEST(Routing, SoftmaxGreedyMatchesPlainTopK) {
  std::vector<float> logits{0.1f, 2.0f, -1.0f, 1.5f};
  RouterSpec s;
  s.n_experts = 4;
  s.top_k = 2;
  s.scale = 3.0f;
  std::vector<int32_t> ids(2);
  std::vector<float> w(2);
  route_ex(logits.data(), 1, s, ids.data(), w.data());
  EXPECT_EQ(chosen(ids), (std::set<int>{1, 3}));
  const float z = std::exp(0.1f) + std::exp(2.0f) + std::exp(-1.0f) + std::exp(1.5f);
  EXPECT_NEAR(w[0], 3.0f * std::exp(2.0f) / z, 1e-6);  // softmax probability, scaled, not renormalised
}

TEST(Routing, CorrectionBiasChangesTheChoiceButNotTheWeights) {
  std::vector<float> logits{2.0f, 1.0f, 0.0f, -1.0f};
  const std::vector<float> bias{0.0f, 0.0f, 0.0f, 5.0f};  // expert 3 chosen despite the lowest score
  RouterSpec s;
  s.n_experts = 4;
  s.top_k = 2;
  s.sigmoid = true;
  s.bias = bias.data();
  std::vector<int32_t> ids(2);
  std::vector<float> w(2);
  route_ex(logits.data(), 1, s, ids.data(), w.data());
  EXPECT_EQ(chosen(ids), (std::set<int>{0, 3}));
  for (int j = 0; j < 2; ++j) EXPECT_FLOAT_EQ(w[size_t(j)], sigmoid(ids[size_t(j)] == 0 ? 2.0f : -1.0f));
}

TEST(Routing, RenormalisedThenScaled) {
  std::vector<float> logits{2.0f, 1.0f, 0.0f, -1.0f};
  RouterSpec s;
  s.n_experts = 4;
  s.top_k = 2;
  s.sigmoid = true;
  s.renorm = true;
  s.scale = 2.5f;
  std::vector<int32_t> ids(2);
  std::vector<float> w(2);
  route_ex(logits.data(), 1, s, ids.data(), w.data());
  EXPECT_NEAR(w[0] + w[1], 2.5f, 1e-6);
  EXPECT_NEAR(w[0] / w[1], sigmoid(2.0f) / sigmoid(1.0f), 1e-6);
}

TEST(Routing, GroupsScoredByTheirTwoBestExcludeAStrongSingleExpert) {
  // Two groups of three. Group 0 has the single best expert (0) but a weak second; group 1 has
  // two good ones. With topk_group 1, V3 scoring (sum of two best) picks group 1; V2 scoring
  // (best one) picks group 0.
  const std::vector<float> base{3.0f, -3.0f, -3.0f, 1.5f, 1.4f, -3.0f};
  RouterSpec s;
  s.n_experts = 6;
  s.top_k = 2;
  s.n_groups = 2;
  s.topk_groups = 1;
  std::vector<int32_t> ids(2);
  std::vector<float> w(2);
  auto logits = base;
  s.sigmoid = true;
  s.group_top2_sum = true;
  route_ex(logits.data(), 1, s, ids.data(), w.data());
  EXPECT_EQ(chosen(ids), (std::set<int>{3, 4}));
  logits = base;
  s.sigmoid = false;
  s.group_top2_sum = false;
  route_ex(logits.data(), 1, s, ids.data(), w.data());
  EXPECT_EQ(ids[0], 0);  // group 0 only: expert 0, then the best other member of group 0
  EXPECT_TRUE(ids[1] == 1 || ids[1] == 2);
}

TEST(Routing, ManyTokensAreIndependent) {
  // Row t's answer does not depend on the other rows.
  const int E = 8, K = 3, T = 5;
  std::vector<float> all(size_t(T * E));
  for (int i = 0; i < T * E; ++i) all[size_t(i)] = std::sin(float(i) * 1.7f) * 2.0f;
  RouterSpec s;
  s.n_experts = E;
  s.top_k = K;
  s.sigmoid = true;
  s.n_groups = 4;
  s.topk_groups = 2;
  s.group_top2_sum = true;
  s.renorm = true;
  std::vector<int32_t> ids(size_t(T * K));
  std::vector<float> w(size_t(T * K));
  auto copy = all;
  route_ex(copy.data(), T, s, ids.data(), w.data());
  for (int t = 0; t < T; ++t) {
    std::vector<float> one(all.begin() + t * E, all.begin() + (t + 1) * E);
    std::vector<int32_t> i1(K);
    std::vector<float> w1(K);
    route_ex(one.data(), 1, s, i1.data(), w1.data());
    for (int j = 0; j < K; ++j) {
      EXPECT_EQ(ids[size_t(t * K + j)], i1[size_t(j)]);
      EXPECT_EQ(w[size_t(t * K + j)], w1[size_t(j)]);
    }
  }
}
