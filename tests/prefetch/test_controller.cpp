// The prefetch controller's bookkeeping with scripted predictors (no tier): recall is scored
// against the routing that follows, and a lookahead whose guesses stay wrong is held back.
#include <gtest/gtest.h>

#include "prefetch/prefetch_controller.h"
#include "storage/io/make_reader.h"
#include "storage/tier/budget.h"
#include "tiers/fake_catalog.h"

namespace moe {
namespace {

// Always guesses the same experts for every future layer.
class FixedPredictor final : public Predictor {
 public:
  explicit FixedPredictor(std::vector<int32_t> guess) : guess_(std::move(guess)) {}
  std::string name() const override { return "fixed"; }
  void predict(const RoutingEvent& ev, int lookahead, std::vector<LayerPrediction>& out) override {
    for (int d = 1; d <= lookahead && ev.layer + d < 4; ++d) {
      LayerPrediction p{ev.layer + d, d, guess_, std::vector<float>(guess_.size(), 1.0f / float(guess_.size()))};
      out.push_back(p);
    }
  }

 private:
  std::vector<int32_t> guess_;
};

// One token at `pos` routed to experts {0, 1} of `layer` (top-2).
void route(PrefetchController& c, int layer, int pos) {
  const std::vector<int32_t> ex = {0, 1}, seq = {0}, p = {pos};
  const std::vector<float> w = {0.5f, 0.5f};
  RoutingEvent ev;
  ev.layer = layer;
  ev.n_tokens = 1;
  ev.top_k = 2;
  ev.experts = ex.data();
  ev.weights = w.data();
  ev.seq_ids = seq.data();
  ev.positions = p.data();
  c.hook()(ev);
}

// 4 MoE layers of 16 experts, top-2; every token routes to experts {0, 1}.
void run_steps(PrefetchController& c, int steps) {
  for (int s = 0; s < steps; ++s)
    for (int l = 0; l < 4; ++l) route(c, l, s);
}

PrefetchModelInfo info() {
  PrefetchModelInfo m;
  m.n_experts = {16, 16, 16, 16};
  m.expert_bytes = {100, 100, 100, 100};
  m.routers.resize(4);
  m.top_k = 2;
  return m;
}

TEST(PrefetchController, ScoresRecallPerLookahead) {
  PrefetchOptions o;
  o.lookahead = 2;
  PrefetchController c(info(), nullptr, o, std::make_unique<FixedPredictor>(std::vector<int32_t>{0, 7}));
  run_steps(c, 10);
  const auto r = c.recall();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_DOUBLE_EQ(r[0].at_k(), 0.5);   // top-2 guess {0, 7} vs actual {0, 1}
  EXPECT_DOUBLE_EQ(r[0].at_2k(), 0.5);  // only two guessed
  EXPECT_EQ(r[0].samples, 30u);         // layers 1-3 of 10 steps
  EXPECT_EQ(r[1].samples, 20u);         // layers 2-3
  EXPECT_EQ(c.expert_tokens()[2][1], 10);
}

TEST(PrefetchController, HoldsBackALookaheadThatKeepsGuessingWrong) {
  PrefetchOptions o;
  o.lookahead = 1;
  PrefetchController wrong(info(), nullptr, o, std::make_unique<FixedPredictor>(std::vector<int32_t>{9, 10}));
  run_steps(wrong, 40);
  EXPECT_LT(wrong.recall()[0].recent, 0.2);
  EXPECT_GT(wrong.recall()[0].gated, 60u);  // of 120 guesses, once the average fell

  PrefetchController right(info(), nullptr, o, std::make_unique<FixedPredictor>(std::vector<int32_t>{1, 0}));
  run_steps(right, 40);
  EXPECT_EQ(right.recall()[0].gated, 0u);
  EXPECT_DOUBLE_EQ(right.recall()[0].at_k(), 1.0);

  o.min_recall = 0;  // gating off
  PrefetchController never(info(), nullptr, o, std::make_unique<FixedPredictor>(std::vector<int32_t>{9, 10}));
  run_steps(never, 40);
  EXPECT_EQ(never.recall()[0].gated, 0u);
}

// Once a layer's routing is known, its experts missing from the RAM tier are read in the
// background (the engine computes the resident ones meanwhile); --no-stream-misses leaves them
// to the compute thread.
// A target that holds nothing and loads nothing: only the controller's options matter here.
class NullTarget final : public PrefetchTarget {
 public:
  bool present(ExpertKey) const override { return false; }
  uint64_t bytes(ExpertKey) const override { return 100; }
  size_t load(std::span<const ExpertKey>) override { return 0; }
};

TEST(PrefetchController, DefaultPrefetchKIsHalfTheTopKIntoRamAndTopKIntoATarget) {
  for (const int top_k : {1, 2, 8}) {
    PrefetchModelInfo m = info();
    m.top_k = top_k;
    PrefetchOptions o;
    PrefetchController ram(m, nullptr, o, std::make_unique<FixedPredictor>(std::vector<int32_t>{0}));
    EXPECT_EQ(ram.options().prefetch_k, std::max(1, top_k / 2)) << top_k;
    NullTarget t;
    PrefetchController vram(m, nullptr, o, std::make_unique<FixedPredictor>(std::vector<int32_t>{0}), &t);
    EXPECT_EQ(vram.options().prefetch_k, top_k) << top_k;
    o.prefetch_k = 3;  // given: kept
    PrefetchController given(m, nullptr, o, std::make_unique<FixedPredictor>(std::vector<int32_t>{0}));
    EXPECT_EQ(given.options().prefetch_k, 3);
  }
}

TEST(PrefetchController, StreamsTheCurrentLayersMissingExperts) {
  test::TempDir dir("stream");
  test::FakeSpec spec;
  spec.n_layers = 4;
  spec.n_experts = 16;
  auto cat = std::make_shared<test::FakeCatalog>(dir.path / "f.pack", spec);
  for (const bool stream : {true, false}) {
    TierOptions to;
    to.budget_bytes = total_expert_bytes(*cat);
    to.top_k = 2;
    TieredExperts tier(cat, make_reader("pread", cat->path()), std::move(to));
    PrefetchOptions o;
    o.lookahead = 1;
    o.stream_layer = stream;
    // Guesses for the next layers only name experts 14 and 15: layer 0's {0, 1} can arrive only
    // by streaming.
    PrefetchController c(info(), &tier, o, std::make_unique<FixedPredictor>(std::vector<int32_t>{14, 15}));
    route(c, 0, 0);
    c.drain();
    EXPECT_EQ(tier.resident(0, 0), stream);
    EXPECT_EQ(tier.resident(0, 1), stream);
    EXPECT_TRUE(tier.resident(1, 14));  // the guess for the next layer, either way
    EXPECT_EQ(tier.stats().total.misses, 0u);
  }
}

}  // namespace
}  // namespace moe
