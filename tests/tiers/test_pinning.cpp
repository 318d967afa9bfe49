// The RAM tier's buffers page-locked for a GPU (TieredExperts::set_pinner): every buffer an
// expert gets is pinned once (reused buffers stay pinned), and every pinned buffer is unpinned
// exactly once, before it is unmapped (evictions, trimming, clear, destruction). A pinner that
// refuses leaves buffers pageable and never unpins them.
#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "storage/io/make_reader.h"
#include "storage/tier/tiered_experts.h"
#include "tiers/fake_catalog.h"

namespace moe {
namespace {

struct PinLog {
  std::mutex mu;
  std::map<void*, size_t> pinned;  // address -> bytes, while pinned
  int pins = 0, unpins = 0, bad_unpins = 0;
};

std::shared_ptr<const HostPinner> pinner(PinLog& log, bool accept) {
  auto p = std::make_shared<HostPinner>();
  p->pin = [&log, accept](void* ptr, size_t n) {
    std::lock_guard lk(log.mu);
    if (!accept) return false;
    ++log.pins;
    log.pinned[ptr] = n;
    return true;
  };
  p->unpin = [&log](void* ptr, size_t n) {
    std::lock_guard lk(log.mu);
    ++log.unpins;
    auto it = log.pinned.find(ptr);
    if (it == log.pinned.end() || it->second != n) ++log.bad_unpins;
    else log.pinned.erase(it);
  };
  return p;
}

TEST(TierPinning, EveryExpertBufferPinnedOnceAndUnpinnedBeforeUnmap) {
  test::TempDir dir("tier-pinning");
  test::FakeSpec spec;
  spec.n_layers = 3;
  spec.n_experts = 8;
  spec.inter_step = 8;  // three buffer sizes: trimming unmaps kept buffers of other sizes
  auto cat = std::make_shared<test::FakeCatalog>(dir.path / "fake.pack", spec);
  PinLog log;
  {
    TierOptions o;
    o.budget_bytes = uint64_t(cat->record(2, 0).raw_bytes + 4096) * 5;
    TieredExperts t(cat, make_reader("pread", cat->path()), std::move(o));
    t.set_pinner(pinner(log, true));
    for (int round = 0; round < 3; ++round)
      for (int l = 0; l < 3; ++l)
        for (int e = 0; e < 8; e += 1 + round) {
          const ExpertWeights w = t.acquire(l, e);
          {
            std::lock_guard lk(log.mu);
            // The expert's matrices lie in a pinned buffer.
            bool inside = false;
            for (auto [p, n] : log.pinned)
              inside = inside || (static_cast<const uint8_t*>(w.gate.data) >= static_cast<uint8_t*>(p) &&
                                  static_cast<const uint8_t*>(w.down.data) < static_cast<uint8_t*>(p) + n);
            EXPECT_TRUE(inside) << "layer " << l << " expert " << e;
          }
          t.release(l, e);
        }
    EXPECT_GT(t.stats().evictions, 0u);
    EXPECT_LT(log.pins, 3 * 8 * 3) << "reused buffers are not pinned again";
    t.clear();
  }
  EXPECT_GT(log.pins, 0);
  EXPECT_EQ(log.unpins, log.pins);
  EXPECT_EQ(log.bad_unpins, 0);
  EXPECT_TRUE(log.pinned.empty());
}

// A warmed tier (moe bench --warm-ram runs before the GPU engine sets the pinner): its resident
// experts' buffers are pinned when the pinner is set, not only buffers handed out later.
TEST(TierPinning, ResidentBuffersArePinnedWhenThePinnerIsSet) {
  test::TempDir dir("tier-pinning-warm");
  auto cat = std::make_shared<test::FakeCatalog>(dir.path / "fake.pack", test::FakeSpec{});
  PinLog log;
  {
    TierOptions o;
    o.budget_bytes = uint64_t(cat->record(0, 0).raw_bytes + 4096) * 24;  // every expert fits
    TieredExperts t(cat, make_reader("pread", cat->path()), std::move(o));
    for (int l = 0; l < 3; ++l)
      for (int e = 0; e < 8; ++e) {
        t.acquire(l, e);
        t.release(l, e);
      }
    t.set_pinner(pinner(log, true));
    EXPECT_EQ(log.pins, 24);
    for (int l = 0; l < 3; ++l)
      for (int e = 0; e < 8; ++e) {
        t.acquire(l, e);  // hits: nothing new to pin
        t.release(l, e);
      }
    EXPECT_EQ(log.pins, 24);
  }
  EXPECT_EQ(log.unpins, 24);
  EXPECT_EQ(log.bad_unpins, 0);
}

TEST(TierPinning, ARefusedPinLeavesBuffersPageable) {
  test::TempDir dir("tier-pinning-refused");
  auto cat = std::make_shared<test::FakeCatalog>(dir.path / "fake.pack", test::FakeSpec{});
  PinLog log;
  {
    TierOptions o;
    o.budget_bytes = uint64_t(cat->record(0, 0).raw_bytes + 4096) * 4;
    TieredExperts t(cat, make_reader("pread", cat->path()), std::move(o));
    t.set_pinner(pinner(log, false));
    for (int e = 0; e < 8; ++e) {
      t.acquire(1, e);
      t.release(1, e);
    }
  }
  EXPECT_EQ(log.pins, 0);
  EXPECT_EQ(log.unpins, 0);
}

}  // namespace
}  // namespace moe
