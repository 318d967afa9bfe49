// The RAM -> GPU hop through the real PrefetchScheduler: guesses become queued copies on the
// fake device in the scheduler's priority order, bounded by the tier's in-flight cap, and a
// guess that arrives in time turns the later acquire into a hit.
#include <gtest/gtest.h>

#include "storage/vram/fake_device.h"
#include "storage/vram/vram_tier.h"
#include "vram/fake_host.h"
#include "prefetch/vram_target.h"

namespace moe {
namespace {

constexpr uint64_t kExpert = 1024;

TEST(VramPrefetch, SchedulerGuessesBecomeCopiesInPriorityOrder) {
  FakeDevice d({1 << 24, 1000.0, 0.0});
  FakeHost h(4, 8, kExpert);
  VramOptions o;
  o.budget_bytes = 8 * kExpert;
  o.prefetch_share = 1.0;
  o.max_prefetch_inflight_bytes = 2 * kExpert;
  VramTier tier(h, d, d, std::move(o));
  VramPrefetchTarget target(tier);
  {
    PrefetchScheduler s(target, {4 * kExpert, 4096});
    const std::vector<PrefetchRequest> r = {
        {{2, 5}, 2, 0.9f}, {{1, 3}, 1, 0.2f}, {{1, 6}, 1, 0.7f}, {{3, 1}, 3, 0.5f}};
    s.submit(r);
    s.drain();
    EXPECT_EQ(s.stats().loaded, 4u);
  }
  // Queued in the tier in priority order; on the engine only what the cap allows.
  EXPECT_EQ(d.copies().size(), 2u);
  EXPECT_LE(d.max_bytes_in_flight(), 2 * kExpert);
  for (ExpertKey k : {ExpertKey{1, 6}, ExpertKey{1, 3}, ExpertKey{2, 5}, ExpertKey{3, 1}}) EXPECT_TRUE(tier.present(k));
  tier.drain();
  std::vector<uint64_t> order;
  for (const auto& c : d.copies()) order.push_back(c.dst);
  ASSERT_EQ(order.size(), 4u);
  // Slots are taken in request order (slot 0 first), so destinations rise with priority.
  for (size_t i = 1; i < order.size(); ++i) EXPECT_GT(order[i], order[i - 1]);
  EXPECT_LE(d.max_bytes_in_flight(), 2 * kExpert);

  const VramExpert x = tier.acquire(1, 6);
  EXPECT_EQ(x.ticket, 0u);  // arrived in time: a hit, nothing to wait on
  EXPECT_EQ(d.read(x.addr, x.bytes), FakeHost::pattern({1, 6}, x.bytes));
  const VramStats st = tier.stats();
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.prefetch_used, 1u);
  EXPECT_EQ(st.prefetch_copies, 4u);
  EXPECT_EQ(st.misses, 0u);
}

TEST(VramPrefetch, ExpertsAlreadyPresentAreSkippedByTheScheduler) {
  FakeDevice d({1 << 24, 1000.0, 0.0});
  FakeHost h(2, 8, kExpert);
  VramOptions o;
  o.budget_bytes = 4 * kExpert;
  VramTier tier(h, d, d, std::move(o));
  tier.acquire(1, 2);  // demand copy in flight
  VramPrefetchTarget target(tier);
  PrefetchScheduler s(target, {4 * kExpert, 4096});
  const std::vector<PrefetchRequest> r = {{{1, 2}, 1, 0.9f}, {{1, 4}, 1, 0.5f}};
  s.submit(r);
  s.drain();
  EXPECT_EQ(s.stats().skipped, 1u);
  EXPECT_EQ(d.copies().size(), 2u);  // the demand copy and (1, 4), never (1, 2) twice
}

}  // namespace
}  // namespace moe
