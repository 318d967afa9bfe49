// Our engine against HF transformers on the same weights (golden outputs from
// training/make_fixtures.py). Metric: max |ours - HF| / max |HF| over all logits.
#include <gtest/gtest.h>

#include <cstdio>

#include "model/fixtures.h"
#include "runtime/engine.h"
#include "runtime/generate.h"
#include "storage/npy.h"

using namespace moe;
using namespace moe::test;

namespace {
constexpr double kLogitTol = 1e-4;
}

TEST(Fixtures, AllArchitecturesPresent) {
  const auto names = fixture_names();
  std::set<std::string> archs;
  for (const auto& n : names) archs.insert(golden(n)["architecture"].get<std::string>());
  for (const char* a : {"MixtralForCausalLM", "Qwen3MoeForCausalLM", "OlmoeForCausalLM", "Qwen2MoeForCausalLM"})
    EXPECT_TRUE(archs.count(a)) << "no fixture for " << a << " in " << fixtures_root();
}

class HfMatch : public ::testing::TestWithParam<std::string> {};

TEST_P(HfMatch, AllPositionLogits) {
  const auto g = golden(GetParam());
  const Model model = load_hf_model(fixture_dir(GetParam()));
  Engine engine(model, {2, 0});
  double worst = 0;
  for (const auto& case_ : g["logits"]) {
    const auto tokens = case_["tokens"].get<std::vector<int32_t>>();
    const auto ref = read_npy_f32(fixture_dir(GetParam()) / "golden" / case_["file"].get<std::string>());
    ASSERT_EQ(ref.shape, (std::vector<int64_t>{int64_t(tokens.size()), model.cfg.vocab_size}));
    const SeqId s = engine.create_sequence();
    const BatchItem item{s, tokens, true};
    const auto logits = engine.forward({&item, 1});
    engine.free_sequence(s);
    const double e = rel_max_err(logits, ref.data);
    worst = std::max(worst, e);
    EXPECT_LT(e, kLogitTol) << "sequence of " << tokens.size() << " tokens";
  }
  std::printf("[ metric ] %s: max|ours-HF|/max|HF| = %.3g\n", GetParam().c_str(), worst);
  RecordProperty("rel_max_err", std::to_string(worst));
}

TEST_P(HfMatch, GreedyContinuation) {
  const auto g = golden(GetParam());
  const Model model = load_hf_model(fixture_dir(GetParam()));
  Engine engine(model, {2, 0});
  for (const auto& case_ : g["greedy"]) {
    const auto prompt = case_["prompt"].get<std::vector<int32_t>>();
    const auto expect = case_["tokens"].get<std::vector<int32_t>>();
    GenerateOptions opts;
    opts.max_new_tokens = int(expect.size());
    const auto got = generate(engine, {prompt}, opts);
    EXPECT_EQ(got[0], expect);
  }
}

TEST_P(HfMatch, ParameterCounts) {
  const auto g = golden(GetParam());
  const Model model = load_hf_model(fixture_dir(GetParam()));
  const ParamCounts p = count_params(model.cfg);
  EXPECT_EQ(p.total, g["num_parameters"].get<int64_t>());
  EXPECT_EQ(p.active, g["active_parameters"].get<int64_t>());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfMatch, ::testing::ValuesIn(fixture_names()), FixtureTestName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(HfMatch);

// GLM-4.5 ships its multi-token-prediction layer after the last decoder layer; transformers
// ignores it, we keep it (validated) for speculative decoding.
TEST(Mtp, GlmMtpLayerIsLoadedAndKept) {
  const std::string fx = "glm4_moe";
  if (!std::filesystem::exists(fixture_dir(fx))) GTEST_SKIP() << "no " << fx << " fixture";
  const auto g = golden(fx);
  const Model m = load_hf_model(fixture_dir(fx));
  ASSERT_EQ(m.cfg.mtp_layers, 1);
  ASSERT_EQ(m.mtp.size(), 1u);
  const MtpLayer& t = m.mtp[0];
  EXPECT_EQ(t.eh_proj.rows, m.cfg.hidden);
  EXPECT_EQ(t.eh_proj.cols, 2 * m.cfg.hidden);
  EXPECT_EQ(t.layer.kind, FfnKind::Moe);
  EXPECT_EQ(int(t.experts.size()), m.cfg.router.n_experts);
  EXPECT_FALSE(t.layer.router_bias.empty());
  EXPECT_FALSE(t.layer.shared.gate.empty());
  EXPECT_FALSE(t.head_norm.empty());
  // The fixture's MTP tensors are exactly those the loader reads: eh_proj, enorm, hnorm and the
  // head norm; 2 layer norms; q/k/v/o weights and q/k/v biases; q/k norms; router weight and
  // correction bias; the shared expert's 3 and each routed expert's 3 matrices.
  EXPECT_EQ(g["mtp_tensors"].size(), size_t(4 + 2 + 7 + 2 + 2 + 3 + 3 * m.cfg.router.n_experts));
}
