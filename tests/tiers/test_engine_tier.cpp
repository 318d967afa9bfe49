// End to end: an engine whose experts come from the RAM tier, at the smallest budget that
// holds one layer's top-k (so experts are evicted and re-read within every forward), gives
// bit-identical logits to the same pack's experts served from its mapping.
#include <gtest/gtest.h>

#include "model/fixtures.h"
#include "pack/pack_test_util.h"
#include "runtime/engine.h"
#include "runtime/pack_model.h"
#include "storage/io/make_reader.h"
#include "storage/pack_file.h"
#include "storage/tier/budget.h"
#include "storage/tier/tiered_experts.h"
#include "tiers/fake_catalog.h"
#include "tiers/min_tier.h"

namespace moe {
namespace {

std::vector<float> logits(const Model& m, const std::vector<int32_t>& tokens) {
  Engine engine(m, {2, 0});
  const SeqId s = engine.create_sequence();
  const BatchItem item{s, tokens, true};
  return engine.forward({&item, 1});
}

struct Case {
  const char* fixture;
  const char* flags;
  const char* io;
};

class EngineTier : public ::testing::TestWithParam<Case> {};

TEST_P(EngineTier, LogitsMatchTheMappedPack) {
  const Case c = GetParam();
  const test::TempDir tmp("tier-engine");
  const auto& dir = tmp.path;
  const auto path = dir / (std::string(c.fixture) + "-" + c.io + ".moepack");
  const auto r = test::moe_cli("convert " + (test::fixture_dir(c.fixture)).string() + " " + path.string() + " " + c.flags);
  ASSERT_EQ(r.code, 0) << r.out;

  const std::vector<int32_t> tokens = {1, 17, 42, 5, 99, 3, 64, 7, 12, 30, 2, 8};
  const std::vector<float> want = logits(load_pack_model(path), tokens);

  Model m = load_pack_model(path);
  auto tier = test::min_budget_tier(path, c.io, m.cfg.router.top_k);
  TieredExperts* t = tier.get();
  m.experts = std::move(tier);
  const std::vector<float> got = logits(m, tokens);

  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float))) << "logits differ";
  const TierStats s = t->stats();
  EXPECT_GT(s.evictions, 0u);
  EXPECT_LE(s.peak_allocated_bytes, s.budget_bytes);
  EXPECT_EQ(s.total.hits + s.total.misses, s.total.acquires());
}

INSTANTIATE_TEST_SUITE_P(Packs, EngineTier,
                         ::testing::Values(Case{"qwen3_moe", "--experts int4 --group-size 32", "uring"},
                                           Case{"mixtral", "--experts bf16 --dense bf16 --compress zstd", "pread"},
                                           Case{"olmoe", "--experts fp8", "mmap"}),
                         [](const auto& info) { return std::string(info.param.fixture) + "_" + info.param.io; });

}  // namespace
}  // namespace moe
