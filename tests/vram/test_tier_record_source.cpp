// TierRecordSource: a pack's decoded records, copied to VRAM slots as they are (direct copies
// from the RAM tier's buffers), read back on the "device" through the pack's own layout give
// the same matrices as the RAM tier's views; each expert stays pinned in the RAM tier until its
// copy has finished.
#include <gtest/gtest.h>

#include "quant/quantize.h"
#include "storage/io/make_reader.h"
#include "storage/tier/tiered_experts.h"
#include "storage/vram/fake_device.h"
#include "storage/vram/tier_record_source.h"
#include "storage/vram/vram_tier.h"
#include "tiers/fake_catalog.h"

namespace moe {
namespace {

TEST(TierRecordSource, SlotsHoldThePackRecordsReadableWithItsLayout) {
  test::TempDir dir("tier-record-source");
  test::FakeSpec spec;
  spec.n_layers = 3;
  spec.n_experts = 6;
  spec.dense_layer = 0;
  spec.compress_odd = true;  // decoded records, not the stored bytes, must reach the device
  auto cat = std::make_shared<test::FakeCatalog>(dir.path / "fake.pack", spec);
  TierOptions to;
  to.budget_bytes = uint64_t(cat->record(1, 0).raw_bytes + 4096) * 4;  // 4 of 12: RAM misses too
  to.top_k = 1;
  TieredExperts ram(cat, make_reader("pread", cat->path()), std::move(to));
  TierRecordSource src(ram);
  EXPECT_TRUE(src.direct_copy());
  EXPECT_EQ(src.n_experts(0), 0);
  EXPECT_EQ(src.bytes({2, 5}), cat->record(2, 5).raw_bytes);

  FakeDevice dev({1 << 24, 1000.0, 0.0});  // slow: copies stay in flight until waited for
  VramOptions vo;
  vo.budget_bytes = 3 * src.bytes({1, 0});
  vo.top_k = 1;
  VramTier vram(src, dev, dev, std::move(vo));
  EXPECT_TRUE(vram.direct());
  for (auto [l, e] : {std::pair{1, 0}, std::pair{2, 3}, std::pair{1, 5}, std::pair{2, 1}, std::pair{1, 0}, std::pair{2, 4}}) {
    const VramExpert x = vram.acquire(l, e);
    if (x.ticket) {
      EXPECT_EQ(ram.pins(l, e), 1) << "pinned in RAM while its copy is in flight";
    }
    vram.wait(x);
    vram.poll();
    EXPECT_EQ(ram.pins(l, e), 0);
    const std::vector<uint8_t> slot = dev.read(x.addr, x.bytes);
    const ExpertWeights want = ram.acquire(l, e);
    for (auto [sh, piece, ref] : {std::tuple{&src.shape().gate, &src.layout().gate, &want.gate},
                                  std::tuple{&src.shape().up, &src.layout().up, &want.up},
                                  std::tuple{&src.shape().down, &src.layout().down, &want.down}})
      EXPECT_EQ(dequantize(record_view(*sh, slot.data(), *piece)), dequantize(*ref)) << "layer " << l << " expert " << e;
    ram.release(l, e);
    vram.release(l, e);
  }
  EXPECT_GT(vram.stats().evictions, 0u);
}

}  // namespace
}  // namespace moe
