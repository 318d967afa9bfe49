// The VRAM tier with a host source whose records are already page-locked (direct_copy()):
// copies read the source directly, no staging buffer exists, and each record stays acquired
// until its copy has finished. FakeDevice applies a copy's bytes only when it completes, and the
// source below scribbles over a record the moment it is released: releasing early would put
// the scribble on the device.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>

#include "storage/vram/fake_device.h"
#include "storage/vram/vram_tier.h"
#include "vram/fake_host.h"

namespace moe {
namespace {

constexpr uint64_t kExpert = 1024;

class PinnedHost final : public HostExpertSource {
 public:
  PinnedHost(int layers, int experts) : layers_(layers), experts_(experts) {}
  int n_layers() const override { return layers_; }
  int n_experts(int) const override { return experts_; }
  uint64_t bytes(ExpertKey) const override { return kExpert; }
  bool direct_copy() const override { return true; }
  const uint8_t* acquire(ExpertKey k) override {
    std::lock_guard lk(mu_);
    if (fail_.count({k.layer, k.expert})) throw std::runtime_error("pinned host: cannot provide this expert");
    auto& b = held_[{k.layer, k.expert}];
    if (!b.empty()) throw std::logic_error("pinned host: acquired twice");
    b = FakeHost::pattern(k, kExpert);
    max_held_ = std::max(max_held_, held_.size());
    return b.data();
  }
  void release(ExpertKey k) override {
    std::lock_guard lk(mu_);
    auto it = held_.find({k.layer, k.expert});
    if (it == held_.end()) throw std::logic_error("pinned host: release without acquire");
    std::fill(it->second.begin(), it->second.end(), uint8_t(0xEE));  // what an early release would copy
    released_.push_back(std::move(it->second));  // keep the memory valid: the copy may still read it
    held_.erase(it);
  }
  size_t held() const {
    std::lock_guard lk(mu_);
    return held_.size();
  }
  void set_failing(ExpertKey k, bool fail) {
    std::lock_guard lk(mu_);
    if (fail) fail_.insert({k.layer, k.expert});
    else fail_.erase({k.layer, k.expert});
  }
  size_t max_held() const {
    std::lock_guard lk(mu_);
    return max_held_;
  }

 private:
  int layers_, experts_;
  mutable std::mutex mu_;
  std::map<std::pair<int, int>, std::vector<uint8_t>> held_;
  std::vector<std::vector<uint8_t>> released_;
  std::set<std::pair<int, int>> fail_;
  size_t max_held_ = 0;
};

VramOptions slots(size_t n) {
  VramOptions o;
  o.budget_bytes = n * kExpert;
  o.top_k = 1;
  return o;
}

TEST(VramDirect, CopiesReadThePinnedRecordAndReleaseItWhenDone) {
  FakeDevice d({1 << 24, 1000.0, 0.0});  // 1000 B/s: every copy takes ~1 virtual second
  PinnedHost h(2, 8);
  VramTier t(h, d, d, slots(3));
  EXPECT_TRUE(t.direct());
  EXPECT_EQ(t.staging_buffers(), 0u);
  EXPECT_EQ(d.pinned_bytes(), 0u);  // no staging allocated
  std::mt19937 rng(2);
  for (int i = 0; i < 100; ++i) {
    const ExpertKey k{int(rng() % 2), int(rng() % 8)};
    const VramExpert x = t.acquire(k.layer, k.expert);
    if (x.ticket) {
      EXPECT_EQ(h.held(), 1u) << "the record is held while its copy runs";
    }
    t.wait(x);
    d.finish_all();
    t.poll();
    EXPECT_EQ(d.read(x.addr, x.bytes), FakeHost::pattern(k, kExpert)) << "layer " << k.layer << " expert " << k.expert;
    t.release(k.layer, k.expert);
  }
  EXPECT_EQ(h.held(), 0u);
  EXPECT_GT(t.stats().evictions, 0u);
  EXPECT_EQ(t.stats().staging_waits, 0u);
}

TEST(VramDirect, PrefetchesAndDemandShareTheEngineWithoutStaging) {
  FakeDevice d({1 << 24, 1000.0, 0.0});
  PinnedHost h(1, 16);
  VramOptions o = slots(8);
  o.max_prefetch_inflight_bytes = 2 * kExpert;
  VramTier t(h, d, d, std::move(o));
  const std::vector<ExpertKey> guess = {{0, 1}, {0, 2}, {0, 3}, {0, 4}};
  EXPECT_EQ(t.prefetch(guess), 4u);
  EXPECT_LE(d.bytes_in_flight(), 2 * kExpert) << "the in-flight cap bounds prefetch copies";
  const VramExpert x = t.acquire(0, 9);  // a demand miss behind at most two prefetches
  t.wait(x);
  EXPECT_EQ(d.read(x.addr, x.bytes), FakeHost::pattern({0, 9}, kExpert));
  t.release(0, 9);
  t.drain();
  for (const ExpertKey& k : guess) {
    const VramExpert y = t.acquire(k.layer, k.expert);
    EXPECT_EQ(y.ticket, 0u);
    EXPECT_EQ(d.read(y.addr, y.bytes), FakeHost::pattern(k, kExpert));
    t.release(k.layer, k.expert);
  }
  EXPECT_EQ(h.held(), 0u);
  EXPECT_EQ(t.stats().prefetch_used, 4u);
}

TEST(VramDirect, EverythingFitsLoadsWithABoundedNumberOfRecordsHeld) {
  FakeDevice d({1 << 24, 1e6, 1e-6});
  PinnedHost h(3, 10);
  VramTier t(h, d, d, slots(30));
  EXPECT_TRUE(t.fully_resident());
  EXPECT_LE(h.max_held(), 4u);
  EXPECT_EQ(h.held(), 0u);
  for (int l = 0; l < 3; ++l)
    for (int e = 0; e < 10; ++e) {
      const VramExpert x = t.acquire(l, e);
      EXPECT_EQ(d.read(x.addr, x.bytes), FakeHost::pattern({l, e}, kExpert));
      t.release(l, e);
    }
}

// A record the host cannot provide (a read error, no room to pin it): a demand miss reports the
// error and leaves the expert absent with its slot free, so a later acquire works; a prefetch of
// it is dropped without disturbing the demand path.
TEST(VramDirect, AFailedCopyLeavesTheExpertAbsentAndItsSlotFree) {
  FakeDevice d({1 << 24, 1000.0, 0.0});
  PinnedHost h(1, 8);
  VramTier t(h, d, d, slots(2));
  h.set_failing({0, 3}, true);
  EXPECT_THROW(t.acquire(0, 3), std::runtime_error);
  EXPECT_FALSE(t.present({0, 3}));
  EXPECT_EQ(t.pins({0, 3}), 0);
  EXPECT_EQ(t.prefetch(std::vector<ExpertKey>{{0, 3}}), 1u);  // queued, then dropped when it fails
  t.drain();
  EXPECT_FALSE(t.present({0, 3}));
  // Both slots are still usable: two experts at once, then the recovered one.
  for (int e : {1, 2}) t.acquire(0, e);
  for (int e : {1, 2}) t.release(0, e);
  h.set_failing({0, 3}, false);
  const VramExpert x = t.acquire(0, 3);
  t.wait(x);
  d.finish_all();
  EXPECT_EQ(d.read(x.addr, x.bytes), FakeHost::pattern({0, 3}, kExpert));
  t.release(0, 3);
  t.drain();
  EXPECT_EQ(h.held(), 0u);
}

}  // namespace
}  // namespace moe
