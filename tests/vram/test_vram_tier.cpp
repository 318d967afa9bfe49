// The VRAM slot pool against FakeDevice: what crosses the link, in what order, who waits for
// what, and what the device holds; all in virtual time.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <thread>

#include "storage/vram/fake_device.h"
#include "storage/vram/vram_tier.h"
#include "vram/fake_host.h"

namespace moe {
namespace {

constexpr uint64_t kExpert = 1024;  // bytes of every fake expert (a multiple of the slot alignment)

// 1000 B/s and no latency: a 1024-byte copy takes 1.024 virtual seconds.
FakeDeviceOptions slow_link() { return {1 << 24, 1000.0, 0.0}; }

VramOptions slots(size_t n, int top_k = 1) {
  VramOptions o;
  o.budget_bytes = n * kExpert;
  o.top_k = top_k;
  return o;
}

void expect_holds(FakeDevice& d, const VramExpert& x, ExpertKey k) {
  EXPECT_EQ(d.read(x.addr, x.bytes), FakeHost::pattern(k, x.bytes)) << "slot of layer " << k.layer << " expert " << k.expert;
}

// Forwards to LRU and counts every call: proves when the policy is (not) consulted.
class SpyPolicy final : public EvictionPolicy {
 public:
  explicit SpyPolicy(int* calls) : calls_(calls), inner_(make_lru_policy()) {}
  void on_insert(ExpertKey k) override { ++*calls_, inner_->on_insert(k); }
  void on_access(ExpertKey k) override { ++*calls_, inner_->on_access(k); }
  void on_evict(ExpertKey k) override { ++*calls_, inner_->on_evict(k); }
  std::optional<ExpertKey> choose_victim(const std::function<bool(ExpertKey)>& f) override {
    ++*calls_;
    return inner_->choose_victim(f);
  }

 private:
  int* calls_;
  std::unique_ptr<EvictionPolicy> inner_;
};

TEST(VramTier, BudgetIsNeverExceededAndSlotsHoldTheRightBytes) {
  FakeDevice d(slow_link());
  FakeHost h(2, 8, kExpert);
  VramOptions o = slots(3);
  o.budget_bytes += kExpert / 2;  // 3.5 slots' worth: 3 slots
  o.staging_bytes = 2 * kExpert;  // staging buffers are reused many times below
  VramTier t(h, d, d, std::move(o));
  EXPECT_EQ(t.slots(), 3u);
  EXPECT_FALSE(t.fully_resident());
  std::mt19937 rng(1);
  for (int i = 0; i < 200; ++i) {
    const ExpertKey k{int(rng() % 2), int(rng() % 8)};
    const VramExpert x = t.acquire(k.layer, k.expert);
    if (i % 3 == 0) d.advance(0.5);  // sometimes compute overlaps the copy a little
    t.wait(x);
    expect_holds(d, x, k);
    t.release(k.layer, k.expert);
  }
  EXPECT_LE(d.peak_allocated_bytes(), 3 * kExpert + kExpert / 2);
  EXPECT_EQ(d.peak_allocated_bytes(), 3 * kExpert);
  EXPECT_EQ(h.outstanding(), 0);
  const VramStats s = t.stats();
  EXPECT_EQ(s.hits + s.misses + s.inflight_hits, 200u);
  EXPECT_GT(s.hits, 0u);
  EXPECT_EQ(s.bytes_copied, s.demand_copies * kExpert);
}

TEST(VramTier, BudgetBelowOneStepIsAOneLineError) {
  FakeDevice d(slow_link());
  FakeHost h(1, 8, kExpert);
  try {
    VramTier t(h, d, d, slots(3, 4));
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("raise --vram-budget to at least 4.0 KiB"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos);
  }
  EXPECT_EQ(d.allocated_bytes(), 0u);
}

TEST(VramTier, PinnedExpertsAreNeverEvictedAndAllPinnedIsAnError) {
  FakeDevice d(slow_link());
  FakeHost h(1, 8, kExpert);
  VramTier t(h, d, d, slots(2));
  const VramExpert a = t.acquire(0, 0);
  const VramExpert b = t.acquire(0, 1);
  t.wait(b);
  try {
    t.acquire(0, 2);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("all 2 expert slots"), std::string::npos) << e.what();
  }
  t.release(0, 1);  // 0 stays pinned (and is older): 1 must be the victim
  const VramExpert c = t.acquire(0, 2);
  EXPECT_TRUE(t.present({0, 0}));
  EXPECT_FALSE(t.present({0, 1}));
  EXPECT_EQ(c.slot, b.slot);
  t.wait(c);
  expect_holds(d, a, {0, 0});
  expect_holds(d, c, {0, 2});
  EXPECT_THROW(t.release(0, 1), std::logic_error);
  EXPECT_THROW(t.acquire(0, 8), std::out_of_range);
}

// Loads 0, 1, 2 into 3 slots, then hits 0 twice more: LRU's victim is 0 (touched before 1 and
// 2 were last), LFU's is 1 (fewest uses, older than 2).
ExpertKey victim_under(std::unique_ptr<EvictionPolicy> policy) {
  FakeDevice d(slow_link());
  FakeHost h(1, 8, kExpert);
  VramOptions o = slots(3);
  o.policy = std::move(policy);
  VramTier t(h, d, d, std::move(o));
  for (int e : {0, 0, 0, 1, 2}) {
    t.wait(t.acquire(0, e));
    t.release(0, e);
  }
  t.wait(t.acquire(0, 3));
  for (int e = 0; e < 3; ++e)
    if (!t.present({0, e})) return {0, e};
  return {-1, -1};
}

TEST(VramTier, EvictionFollowsThePolicy) {
  EXPECT_EQ(victim_under(make_policy("lru")), (ExpertKey{0, 0}));
  EXPECT_EQ(victim_under(make_policy("lfu")), (ExpertKey{0, 1}));
}

TEST(VramTier, DemandCopyGoesAheadOfQueuedPrefetches) {
  FakeDevice d(slow_link());
  FakeHost h(1, 16, kExpert);
  VramOptions o = slots(8);
  o.prefetch_share = 1.0;
  o.max_prefetch_inflight_bytes = kExpert;  // one prefetch on the engine at a time
  VramTier t(h, d, d, std::move(o));
  const std::vector<ExpertKey> guesses = {{0, 1}, {0, 2}, {0, 3}, {0, 4}};
  EXPECT_EQ(t.prefetch(guesses), 4u);
  ASSERT_EQ(d.copies().size(), 1u);  // the cap holds the other three in the tier's queue
  const VramExpert x = t.acquire(0, 9);
  ASSERT_EQ(d.copies().size(), 2u);
  EXPECT_EQ(d.copies()[1].ticket, x.ticket);
  EXPECT_EQ(d.copies()[1].dst, x.addr);
  // Behind at most one prefetch: done after two copies' time.
  t.wait(x);
  EXPECT_DOUBLE_EQ(d.now(), 2 * 1.024);
  t.drain();
  std::vector<DeviceAddr> order;
  for (const auto& c : d.copies()) order.push_back(c.dst);
  ASSERT_EQ(order.size(), 5u);
  const VramStats s = t.stats();
  EXPECT_EQ(s.demand_copies, 1u);
  EXPECT_EQ(s.prefetch_copies, 4u);
  EXPECT_EQ(s.max_prefetch_inflight_bytes, kExpert);
  for (const ExpertKey& k : guesses) EXPECT_TRUE(t.resident(k));
}

TEST(VramTier, ComputeWaitsOnlyOnItsOwnExpertsCopy) {
  FakeDevice d(slow_link());
  FakeHost h(1, 8, kExpert);
  VramTier t(h, d, d, slots(4, 2));
  const VramExpert a = t.acquire(0, 0);
  const VramExpert b = t.acquire(0, 1);
  ASSERT_NE(a.ticket, 0u);
  ASSERT_NE(b.ticket, 0u);
  t.wait(a);
  EXPECT_EQ(d.waits(), std::vector<CopyTicket>{a.ticket});
  EXPECT_TRUE(t.ready(a));
  EXPECT_FALSE(t.ready(b));
  EXPECT_FALSE(t.resident({0, 1}));
  d.advance(2.0);  // compute of expert 0 took long enough for b's copy to land
  t.wait(b);
  EXPECT_EQ(d.waits(), std::vector<CopyTicket>{a.ticket});  // no second block
  EXPECT_EQ(t.stats().waits, 1u);
  t.release(0, 0);
  const VramExpert again = t.acquire(0, 0);
  EXPECT_EQ(again.ticket, 0u);  // resident: nothing to wait on
  EXPECT_EQ(t.stats().hits, 1u);
}

TEST(VramTier, AcquireOfAPrefetchInFlightSharesItsCopy) {
  FakeDevice d(slow_link());
  FakeHost h(1, 8, kExpert);
  VramTier t(h, d, d, slots(4));
  const ExpertKey k{0, 5};
  EXPECT_EQ(t.prefetch({&k, 1}), 1u);
  ASSERT_EQ(d.copies().size(), 1u);
  const VramExpert x = t.acquire(0, 5);
  EXPECT_EQ(x.ticket, d.copies()[0].ticket);
  EXPECT_EQ(d.copies().size(), 1u);  // not copied twice
  t.wait(x);
  expect_holds(d, x, k);
  const VramStats s = t.stats();
  EXPECT_EQ(s.inflight_hits, 1u);
  EXPECT_EQ(s.prefetch_used, 1u);
  EXPECT_EQ(s.misses, 0u);
}

TEST(VramTier, QueuedPrefetchIsPromotedToDemand) {
  FakeDevice d(slow_link());
  FakeHost h(1, 8, kExpert);
  VramOptions o = slots(4);
  o.max_prefetch_inflight_bytes = kExpert;
  VramTier t(h, d, d, std::move(o));
  const std::vector<ExpertKey> g = {{0, 1}, {0, 2}};
  EXPECT_EQ(t.prefetch(g), 2u);
  ASSERT_EQ(d.copies().size(), 1u);
  const VramExpert x = t.acquire(0, 2);  // still in the tier's queue: goes to the engine now
  ASSERT_EQ(d.copies().size(), 2u);
  EXPECT_EQ(d.copies()[1].ticket, x.ticket);
  EXPECT_EQ(t.stats().demand_copies, 1u);
  EXPECT_EQ(t.stats().prefetch_used, 1u);
}

TEST(VramTier, DemandTakesTheSlotOfAQueuedPrefetch) {
  FakeDevice d(slow_link());
  FakeHost h(1, 8, kExpert);
  VramOptions o = slots(2);
  o.prefetch_share = 1.0;
  o.max_prefetch_inflight_bytes = kExpert;
  VramTier t(h, d, d, std::move(o));
  const std::vector<ExpertKey> g = {{0, 1}, {0, 2}};
  EXPECT_EQ(t.prefetch(g), 2u);  // 1 copying, 2 queued: both slots taken
  const VramExpert x = t.acquire(0, 7);
  EXPECT_FALSE(t.present({0, 2}));
  EXPECT_TRUE(t.present({0, 1}));
  EXPECT_EQ(t.stats().prefetch_wasted, 1u);
  EXPECT_EQ(t.stats().slot_waits, 0u);
  t.wait(x);
  expect_holds(d, x, {0, 7});
}

TEST(VramTier, DemandWaitsForACopyInFlightWhenNoSlotIsFree) {
  FakeDevice d(slow_link());
  FakeHost h(1, 8, kExpert);
  VramOptions o = slots(1);
  o.prefetch_share = 1.0;
  VramTier t(h, d, d, std::move(o));
  const ExpertKey g{0, 3};
  EXPECT_EQ(t.prefetch({&g, 1}), 1u);
  const VramExpert x = t.acquire(0, 4);  // the only slot is being filled by a guess
  EXPECT_EQ(d.waits(), std::vector<CopyTicket>{d.copies()[0].ticket});
  EXPECT_FALSE(t.present(g));
  const VramStats s = t.stats();
  EXPECT_EQ(s.slot_waits, 1u);
  EXPECT_EQ(s.prefetch_wasted, 1u);
  t.wait(x);
  expect_holds(d, x, {0, 4});
}

TEST(VramTier, DemandWaitsForAStagingBufferAndNeverCorruptsOne) {
  FakeDevice d(slow_link());
  FakeHost h(1, 8, kExpert);
  VramOptions o = slots(4, 3);
  o.staging_bytes = kExpert;  // one buffer for three misses
  VramTier t(h, d, d, std::move(o));
  EXPECT_EQ(t.staging_buffers(), 1u);
  std::vector<VramExpert> x;
  for (int e = 0; e < 3; ++e) x.push_back(t.acquire(0, e));
  EXPECT_EQ(t.stats().staging_waits, 2u);
  for (int e = 0; e < 3; ++e) {
    t.wait(x[size_t(e)]);
    expect_holds(d, x[size_t(e)], {0, e});
  }
}

TEST(VramTier, PrefetchedButUnusedExpertsHoldAtMostTheirShare) {
  FakeDevice d(slow_link());
  FakeHost h(1, 8, kExpert);
  VramOptions o = slots(4);
  o.prefetch_share = 0.5;
  VramTier t(h, d, d, std::move(o));
  const std::vector<ExpertKey> g = {{0, 0}, {0, 1}, {0, 2}, {0, 3}};
  EXPECT_EQ(t.prefetch(g), 2u);
  t.drain();
  // Used guesses no longer count: two more fit.
  t.acquire(0, 0);
  t.acquire(0, 1);
  EXPECT_EQ(t.prefetch(g), 2u);
}

TEST(VramTier, PendingCopyBytesCountWhatIsAhead) {
  FakeDevice d(slow_link());
  FakeHost h(1, 8, [](int, int e) { return uint64_t(256 * (e + 1)); });
  VramTier t(h, d, d, slots(4, 2));
  t.acquire(0, 0);  // 256 B
  t.acquire(0, 1);  // 512 B
  EXPECT_EQ(t.pending_copy_bytes({0, 0}), 256u);
  EXPECT_EQ(t.pending_copy_bytes({0, 1}), 768u);
  EXPECT_EQ(t.pending_copy_bytes({0, 3}), 768u + 1024u);  // absent: behind both
  d.finish_all();
  t.poll();
  EXPECT_EQ(t.pending_copy_bytes({0, 1}), 0u);
}

TEST(VramTier, WhenEverythingFitsAllIsResidentAndNoCacheMachineryRuns) {
  FakeDevice d(slow_link());
  FakeHost h(2, 4, [](int l, int e) { return uint64_t(512 + 256 * ((l + e) % 3)); });
  int policy_calls = 0;
  VramOptions o;
  o.budget_bytes = 1 << 20;  // far more than 8 experts
  o.staging_bytes = 2 * 1024;
  o.policy = std::make_unique<SpyPolicy>(&policy_calls);
  VramTier t(h, d, d, std::move(o));
  EXPECT_TRUE(t.fully_resident());
  EXPECT_EQ(t.slots(), 8u);  // only what the experts need, not the whole budget
  EXPECT_EQ(d.allocated_bytes(), 8u * t.slot_bytes());
  EXPECT_EQ(d.copies().size(), 8u);
  const size_t waits_after_load = d.waits().size();
  const int host_acquires = h.acquires();
  std::vector<std::thread> threads;
  for (int n = 0; n < 2; ++n)
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i)
        for (int l = 0; l < 2; ++l)
          for (int e = 0; e < 4; ++e) {
            const VramExpert x = t.acquire(l, e);
            EXPECT_EQ(x.ticket, 0u);
            t.release(l, e);
          }
    });
  for (auto& th : threads) th.join();
  for (int l = 0; l < 2; ++l)
    for (int e = 0; e < 4; ++e) expect_holds(d, t.acquire(l, e), {l, e});
  EXPECT_EQ(policy_calls, 0);
  EXPECT_EQ(d.copies().size(), 8u);
  EXPECT_EQ(d.waits().size(), waits_after_load);
  EXPECT_EQ(h.acquires(), host_acquires);
  EXPECT_EQ(t.stats().hits, 0u);  // not even a counter on the hot path
  const ExpertKey k{0, 1};
  EXPECT_EQ(t.prefetch({&k, 1}), 0u);
}

}  // namespace
}  // namespace moe
