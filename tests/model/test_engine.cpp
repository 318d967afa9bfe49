// Engine behaviour that needs no reference: batching, prefix reuse, the routing hook.
#include <gtest/gtest.h>

#include "model/fixtures.h"
#include "runtime/engine.h"

using namespace moe;
using namespace moe::test;

class EngineTest : public ::testing::TestWithParam<std::string> {};

// 4 sequences of different lengths, prefilled and then decoded together, give the same
// logits as each run alone.
TEST_P(EngineTest, BatchedDecodeEqualsOneAtATime) {
  const Model model = load_hf_model(fixture_dir(GetParam()));
  const int64_t V = model.cfg.vocab_size;
  const std::vector<int64_t> lens = {3, 9, 1, 14};
  const int steps = 4;
  std::vector<std::vector<int32_t>> prompts, follow;
  for (size_t i = 0; i < lens.size(); ++i) {
    prompts.push_back(test_tokens(lens[i], V, uint32_t(i + 1)));
    follow.push_back(test_tokens(steps, V, uint32_t(100 + i)));
  }
  // Alone: prefill, then one token per step.
  std::vector<std::vector<float>> alone;  // per sequence: steps+1 rows
  {
    Engine e(model, {2, 0});
    for (size_t i = 0; i < lens.size(); ++i) {
      const SeqId s = e.create_sequence();
      BatchItem it{s, prompts[i], false};
      std::vector<float> rows = e.forward({&it, 1});
      for (int k = 0; k < steps; ++k) {
        BatchItem d{s, std::span(&follow[i][size_t(k)], 1), false};
        const auto l = e.forward({&d, 1});
        rows.insert(rows.end(), l.begin(), l.end());
      }
      alone.push_back(rows);
    }
  }
  Engine e(model, {2, 0});
  std::vector<SeqId> ids;
  std::vector<BatchItem> batch;
  for (size_t i = 0; i < lens.size(); ++i) {
    ids.push_back(e.create_sequence());
    batch.push_back({ids.back(), prompts[i], false});
  }
  std::vector<std::vector<float>> together(lens.size());
  auto take = [&](const std::vector<float>& l) {
    for (size_t i = 0; i < lens.size(); ++i)
      together[i].insert(together[i].end(), l.begin() + std::ptrdiff_t(i * size_t(V)),
                         l.begin() + std::ptrdiff_t((i + 1) * size_t(V)));
  };
  take(e.forward(batch));
  for (int k = 0; k < steps; ++k) {
    batch.clear();
    for (size_t i = 0; i < lens.size(); ++i) batch.push_back({ids[i], std::span(&follow[i][size_t(k)], 1), false});
    take(e.forward(batch));
  }
  for (size_t i = 0; i < lens.size(); ++i) {
    EXPECT_EQ(e.length(ids[i]), lens[i] + steps);
    EXPECT_LT(rel_max_err(together[i], alone[i]), 1e-5) << "sequence " << i;
  }
}

// A forked prefix continues exactly like recomputing the whole sequence.
TEST_P(EngineTest, ForkedPrefixMatchesRecompute) {
  const Model model = load_hf_model(fixture_dir(GetParam()));
  const auto a = test_tokens(12, model.cfg.vocab_size, 5);
  Engine e(model, {2, 0});
  const SeqId s = e.create_sequence();
  BatchItem full{s, a, true};
  const auto ref = e.forward({&full, 1});
  const SeqId f = e.fork_sequence(s, 8);
  BatchItem rest{f, std::span(a).subspan(8), true};
  const auto got = e.forward({&rest, 1});
  const int64_t V = model.cfg.vocab_size;
  EXPECT_LT(rel_max_err(got, std::vector<float>(ref.begin() + 8 * V, ref.end())), 1e-5);
  e.truncate(s, 8);
  EXPECT_EQ(e.length(s), 8);
  // The truncated original continues the same way.
  BatchItem rest_s{s, std::span(a).subspan(8), true};
  EXPECT_LT(rel_max_err(e.forward({&rest_s, 1}), std::vector<float>(ref.begin() + 8 * V, ref.end())), 1e-5);
}

TEST_P(EngineTest, RoutingHookSeesEveryMoeLayer) {
  const Model model = load_hf_model(fixture_dir(GetParam()));
  Engine e(model, {2, 0});
  std::vector<int> layers;
  e.add_routing_hook([&](const RoutingEvent& ev) {
    layers.push_back(ev.layer);
    EXPECT_EQ(ev.n_tokens, 5);
    EXPECT_EQ(ev.top_k, model.cfg.router.top_k);
    for (int i = 0; i < ev.n_tokens * ev.top_k; ++i) {
      EXPECT_GE(ev.experts[i], 0);
      EXPECT_LT(ev.experts[i], model.cfg.router.n_experts);
      EXPECT_GT(ev.weights[i], 0.0f);
    }
    for (int t = 0; t < ev.n_tokens; ++t) {
      EXPECT_EQ(ev.positions[t], t);
      float sum = 0;
      for (int j = 0; j < ev.top_k; ++j) sum += ev.weights[t * ev.top_k + j];
      // Weights sum to the routed scaling factor when renormalised (or softmaxed over the k,
      // gpt-oss); softmax probabilities of k experts stay below it; sigmoid scores below k times it.
      const RouterConfig& rc = model.cfg.router;
      const float scale = float(rc.routed_scaling);
      if (rc.norm_topk_prob || rc.scoring == RouterScoring::TopKSoftmax) EXPECT_NEAR(sum, scale, 1e-5f * scale);
      else if (rc.scoring == RouterScoring::Softmax) EXPECT_LT(sum, scale * (1.0f + 1e-5f));
      else EXPECT_LT(sum, scale * float(ev.top_k));
    }
  });
  const SeqId s = e.create_sequence();
  const auto t = test_tokens(5, model.cfg.vocab_size, 9);
  BatchItem it{s, t, false};
  e.forward({&it, 1});
  EXPECT_EQ(int(layers.size()), model.cfg.n_moe_layers());
}

TEST_P(EngineTest, RejectsBadRequestsWithoutChangingState) {
  const Model model = load_hf_model(fixture_dir(GetParam()));
  Engine e(model, {1, 16});
  const SeqId s = e.create_sequence();
  const std::vector<int32_t> bad = {1, int32_t(model.cfg.vocab_size)};
  BatchItem it{s, bad, false};
  EXPECT_THROW(e.forward({&it, 1}), std::invalid_argument);
  EXPECT_EQ(e.length(s), 0);
  const auto long_ = test_tokens(17, model.cfg.vocab_size, 3);
  BatchItem it2{s, long_, false};
  EXPECT_THROW(e.forward({&it2, 1}), std::invalid_argument);
  BatchItem it3{s + 100, long_, false};
  EXPECT_THROW(e.forward({&it3, 1}), std::invalid_argument);
  EXPECT_EQ(e.length(s), 0);
}

// Wraps the model's source: counts acquires and releases, and hands out weights the FFN kernel
// rejects (a Q4 view with no valid group), so forward throws while experts are held.
class PoisonedExperts final : public ExpertSource {
 public:
  explicit PoisonedExperts(std::unique_ptr<ExpertSource> inner) : inner_(std::move(inner)) {}
  ExpertWeights acquire(int layer, int expert) override {
    ExpertWeights w = inner_->acquire(layer, expert);
    ++acquires;
    w.gate.dtype = DType::Q4;
    w.gate.group = 0;  // qmatmul checks the group before it reads any byte
    return w;
  }
  void release(int layer, int expert) override {
    ++releases;
    inner_->release(layer, expert);
  }
  int acquires = 0, releases = 0;

 private:
  std::unique_ptr<ExpertSource> inner_;
};

// An exception between acquiring a chunk of experts and computing with it releases the chunk.
TEST_P(EngineTest, ThrowingExpertKernelReleasesHeldExperts) {
  Model model = load_hf_model(fixture_dir(GetParam()));
  if (model.cfg.n_moe_layers() == 0) GTEST_SKIP() << "no MoE layer";
  auto src = std::make_unique<PoisonedExperts>(std::move(model.experts));
  PoisonedExperts* counts = src.get();
  model.experts = std::move(src);
  Engine e(model, {1, 0});
  const SeqId s = e.create_sequence();
  const auto t = test_tokens(4, model.cfg.vocab_size, 7);
  BatchItem it{s, t, false};
  EXPECT_THROW(e.forward({&it, 1}), std::invalid_argument);
  EXPECT_GT(counts->acquires, 0);
  EXPECT_EQ(counts->releases, counts->acquires);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineTest, ::testing::ValuesIn(fixture_names()), FixtureTestName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(EngineTest);
