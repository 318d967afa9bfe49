// With O_DIRECT reads into the tier's own buffers, a model larger than the budget keeps the
// process's RSS within budget + a small fixed overhead.
#include <gtest/gtest.h>

#include "storage/io/make_reader.h"
#include "storage/tier/budget.h"
#include "storage/process_memory.h"
#include "storage/tier/tiered_experts.h"
#include "tiers/fake_catalog.h"

namespace moe {
namespace {

TEST(MemoryBound, ReadsProcessMemory) {
  const ProcessMemory m = read_process_memory();
  EXPECT_GT(m.rss_bytes, 0u);
  EXPECT_GE(m.peak_rss_bytes, m.rss_bytes);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;  // sanitizers quarantine freed memory: RSS says nothing then
#else
constexpr bool kSanitized = false;
#endif

TEST(MemoryBound, RssStaysWithinTheBudgetWithDirectReads) {
  if (kSanitized) GTEST_SKIP() << "RSS bound not measurable under a sanitizer";
  const test::TempDir tmp("rss");
  const auto& dir = tmp.path;
  test::FakeSpec spec;
  spec.n_layers = 4;
  spec.n_experts = 16;
  spec.hidden = 512;
  spec.inter = 256;  // 1.5 MiB per expert, 96 MiB in all
  auto cat = std::make_shared<test::FakeCatalog>(dir / "big.pack", spec);
  const uint64_t per_expert = expert_cache_bytes(cat->record(0, 0));
  const uint64_t budget = 8 * per_expert;  // an eighth of the experts
  auto reader = make_reader("uring", cat->path());
  if (!reader->direct()) {
    GTEST_SKIP() << "the test directory's filesystem has no O_DIRECT; the bound needs it";
  }
  const uint64_t before = read_process_memory().rss_bytes;
  uint64_t worst = before;
  {
    TierOptions o;
    o.budget_bytes = budget;
    o.top_k = 4;
    TieredExperts t(cat, std::move(reader), std::move(o));
    for (int pass = 0; pass < 2; ++pass)
      for (int l = 0; l < spec.n_layers; ++l)
        for (int e = 0; e < spec.n_experts; ++e) {
          const ExpertWeights w = t.acquire(l, e);
          if (e % 5 == 0) {
            ASSERT_TRUE(cat->matches(l, e, w));
          }
          t.release(l, e);
          worst = std::max(worst, read_process_memory().rss_bytes);
        }
    const TierStats s = t.stats();
    EXPECT_EQ(s.total.misses, 2u * 64u);  // nothing fits twice: every access after eviction reads
    EXPECT_LE(s.peak_allocated_bytes, budget);
  }
  // Fixed overhead: the expected-values vector of matches() and allocator slack.
  const uint64_t slack = 8u << 20;
  EXPECT_LE(worst - before, budget + slack) << "RSS grew by " << format_bytes(worst - before) << " with a budget of "
                                            << format_bytes(budget);
}

}  // namespace
}  // namespace moe
