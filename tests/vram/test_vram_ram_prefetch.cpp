// The whole expert path of the GPU engine on the CPU: a RAM tier over a pack (FakeCatalog),
// RecordSource, the VRAM tier on FakeDevice, and the prefetch controller sending its guesses to
// the VRAM tier (the RAM -> GPU hop) from its scheduler thread while the "compute" thread
// acquires experts (a VRAM miss reads the RAM tier, a RAM miss the file). Regression: the RAM
// tier's demand listener used to be installed here too, and a demand read under the VRAM
// tier's lock took the scheduler's lock while the scheduler held it and waited for the VRAM
// tier: a deadlock the GPU found (moe run --device cuda --vram-budget 25% hung).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <random>

#include "prefetch/prefetch_controller.h"
#include "prefetch/vram_target.h"
#include "storage/io/make_reader.h"
#include "storage/tier/tiered_experts.h"
#include "storage/vram/fake_device.h"
#include "storage/vram/record_source.h"
#include "storage/vram/vram_tier.h"
#include "tiers/fake_catalog.h"

namespace moe {
namespace {

constexpr int kLayers = 3, kExperts = 8, kTopK = 2;

// Guesses random experts for the next layers: plenty of prefetch traffic, often wrong.
class RandomPredictor final : public Predictor {
 public:
  std::string name() const override { return "random"; }
  void predict(const RoutingEvent& ev, int lookahead, std::vector<LayerPrediction>& out) override {
    for (int d = 1; d <= lookahead && ev.layer + d < kLayers; ++d) {
      LayerPrediction p{ev.layer + d, d, {}, {}};
      for (int i = 0; i < 3; ++i) {
        p.experts.push_back(int32_t(rng_() % kExperts));
        p.scores.push_back(0.2f);
      }
      out.push_back(p);
    }
  }

 private:
  std::mt19937 rng_{7};
};

TEST(VramRamPrefetch, DemandMissesAndPrefetchesDoNotDeadlock) {
  test::TempDir dir("vram-ram-prefetch");
  test::FakeSpec spec;
  spec.n_layers = kLayers;
  spec.n_experts = kExperts;
  auto cat = std::make_shared<test::FakeCatalog>(dir.path / "fake.pack", spec);
  TierOptions to;
  to.budget_bytes = uint64_t(cat->record(0, 0).raw_bytes) * 10;  // 10 of 24 experts: RAM misses too
  to.top_k = kTopK;
  TieredExperts ram(cat, make_reader("pread", cat->path()), std::move(to));
  RecordSource records(ram, {kExperts, kExperts, kExperts});
  FakeDevice dev({1 << 26, 1e9, 1e-6});
  VramOptions vo;
  vo.budget_bytes = 6 * records.bytes({0, 0});  // 6 of 24 experts
  vo.top_k = kTopK;
  VramTier vram(records, dev, dev, std::move(vo));
  VramPrefetchTarget target(vram);

  PrefetchModelInfo info;
  info.n_experts = {kExperts, kExperts, kExperts};
  info.expert_bytes = {records.bytes({0, 0}), records.bytes({1, 0}), records.bytes({2, 0})};
  info.routers.resize(kLayers);
  info.top_k = kTopK;
  PrefetchOptions po;
  po.lookahead = 2;
  po.min_recall = 0;  // never hold the random guesses back
  PrefetchController pc(info, &ram, po, std::make_unique<RandomPredictor>(), &target);
  ASSERT_TRUE(pc.prefetching());

  auto work = std::async(std::launch::async, [&] {
    std::mt19937 rng(3);
    const std::vector<int32_t> seq = {0};
    const std::vector<float> w = {0.5f, 0.5f};
    for (int step = 0; step < 3000; ++step)
      for (int l = 0; l < kLayers; ++l) {
        std::vector<int32_t> ex = {int32_t(rng() % kExperts), 0};
        ex[1] = int32_t((ex[0] + 1 + rng() % (kExperts - 1)) % kExperts);
        const std::vector<int32_t> pos = {step};
        RoutingEvent ev;
        ev.layer = l;
        ev.n_tokens = 1;
        ev.top_k = kTopK;
        ev.experts = ex.data();
        ev.weights = w.data();
        ev.seq_ids = seq.data();
        ev.positions = pos.data();
        pc.hook()(ev);
        for (int32_t e : ex) vram.wait(vram.acquire(l, e));
        dev.advance(1e-5);
        for (int32_t e : ex) vram.release(l, e);
      }
  });
  if (work.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    std::fprintf(stderr, "VramRamPrefetch: no progress in 60 s: deadlock between the tiers and the scheduler\n");
    std::fflush(stderr);
    std::_Exit(1);  // the stuck threads cannot be joined
  }
  work.get();
  pc.drain();
  const VramStats st = vram.stats();
  EXPECT_GT(st.misses, 0u);
  EXPECT_GT(st.prefetch_copies, 0u);
  EXPECT_GT(ram.stats().total.misses, 0u);
}

}  // namespace
}  // namespace moe
