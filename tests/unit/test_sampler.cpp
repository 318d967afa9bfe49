#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>

#include "runtime/sampler.h"

using namespace moe;

namespace {
const std::vector<float> kLogits = {1.0f, 3.0f, 2.5f, -1.0f, 0.0f, 2.9f};
}

TEST(Sampler, GreedyIsArgmax) {
  Sampler s({});
  EXPECT_EQ(s.sample(kLogits, {}), 1);
}

TEST(Sampler, SameSeedSameTokens) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 42;
  Sampler a(p), b(p);
  std::vector<int32_t> ta, tb;
  for (int i = 0; i < 50; ++i) {
    ta.push_back(a.sample(kLogits, {}));
    tb.push_back(b.sample(kLogits, {}));
  }
  EXPECT_EQ(ta, tb);
  p.seed = 43;
  Sampler c(p);
  std::vector<int32_t> tc;
  for (int i = 0; i < 50; ++i) tc.push_back(c.sample(kLogits, {}));
  EXPECT_NE(ta, tc);
}

TEST(Sampler, FiltersRestrictTheCandidates) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 2;  // only ids 1 and 5
  Sampler k(p);
  for (int i = 0; i < 200; ++i) {
    const int32_t t = k.sample(kLogits, {});
    EXPECT_TRUE(t == 1 || t == 5) << t;
  }
  p.top_k = 0;
  p.top_p = 0.01f;  // only the best token
  Sampler tp(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(tp.sample(kLogits, {}), 1);
  p.top_p = 1.0f;
  p.min_p = 0.5f;  // p >= 0.5 * p(1): ids 1, 2, 5 (exp(-0.5) = 0.61 and exp(-0.1))
  Sampler mp(p);
  std::map<int32_t, int> seen;
  for (int i = 0; i < 500; ++i) ++seen[mp.sample(kLogits, {})];
  for (auto& [t, n] : seen) EXPECT_TRUE(t == 1 || t == 2 || t == 5) << t;
  EXPECT_EQ(seen.size(), 3u);
}

TEST(Sampler, FrequenciesFollowTheDistribution) {
  // Two tokens with logits differing by ln 3: expect a 3:1 split.
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 7;
  Sampler s(p);
  const std::vector<float> l = {std::log(3.0f), 0.0f};
  int first = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) first += s.sample(l, {}) == 0;
  EXPECT_NEAR(double(first) / n, 0.75, 0.02);
}

TEST(Sampler, WholeVocabularyDrawsAcrossBlocks) {
  // A vocabulary of many draw blocks: three live tokens far apart (weights 1 : 2 : 1, the last
  // in a partial block), every other token masked or underflowing. Only the live ones are
  // drawn, in proportion; the same seed repeats the draws.
  std::vector<float> l(20003, -std::numeric_limits<float>::infinity());
  for (size_t i = 0; i < l.size(); i += 7) l[i] = -200.0f;  // exp underflows to 0
  l[5] = 0.0f, l[10000] = std::log(2.0f), l[20002] = 0.0f;
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 11;
  Sampler s(p), again(p);
  std::map<int32_t, int> seen;
  const int n = 6000;
  for (int i = 0; i < n; ++i) {
    const int32_t t = s.sample(l, {});
    ASSERT_EQ(t, again.sample(l, {}));
    ++seen[t];
  }
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_NEAR(double(seen[5]) / n, 0.25, 0.03);
  EXPECT_NEAR(double(seen[10000]) / n, 0.50, 0.03);
  EXPECT_NEAR(double(seen[20002]) / n, 0.25, 0.03);
}

TEST(Sampler, GreedyTakesTheFirstMaximum) {
  std::vector<float> l(1000, 0.0f);
  l[3] = 1.0f, l[700] = 2.0f, l[999] = 2.0f;
  EXPECT_EQ(argmax(l), 700);
  l[10] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(argmax(l), 700);
  EXPECT_EQ(argmax(std::vector<float>{-1.0f}), 0);
}

TEST(Sampler, RepetitionPenalty) {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  // id 1 (3.0 -> 1.5) falls below id 5 (2.9) once it has been seen.
  EXPECT_EQ(s.sample(kLogits, std::vector<int32_t>{1}), 5);
  EXPECT_EQ(s.sample(kLogits, std::vector<int32_t>{0}), 1);
}

TEST(Sampler, RejectsBadParameters) {
  SamplingParams p;
  p.top_p = 0.0f;
  EXPECT_THROW(Sampler{p}, std::invalid_argument);
  p = {};
  p.temperature = -1;
  EXPECT_THROW(Sampler{p}, std::invalid_argument);
  p = {};
  p.repetition_penalty = 0;
  EXPECT_THROW(Sampler{p}, std::invalid_argument);
}
