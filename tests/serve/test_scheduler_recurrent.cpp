// The scheduler on a gated DeltaNet model (the qwen3_next fixture: recurrent state beside the
// KV cache): prefix reuse forks cached sequences at block boundaries, which restores the nearest
// state snapshot and recomputes the rest, and running ones where their chunk stopped for it; the
// tokens stay those of running without the cache, alone or among others.
#include "scheduler_util.h"

using namespace moe;
using namespace moe::serve;
using test::collect;
using test::request;

TEST(SchedulerRecurrent, PrefixReuseAndBatchingKeepTokens) {
  const auto dir = std::filesystem::path(MOE_SOURCE_DIR) / "tests/fixtures/qwen3_next";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no qwen3_next fixture";
  SessionOptions so;
  so.device.threads = 1;
  Session s(dir, so);
  // Prompts sharing a long prefix (past one 16-token block and one 64-token DeltaNet chunk).
  std::vector<int32_t> shared;
  for (int i = 0; i < 90; ++i) shared.push_back(int32_t((i * 37 + 11) % 1400));
  std::vector<std::vector<int32_t>> prompts;
  for (int k = 0; k < 4; ++k) {
    auto p = shared;
    for (int i = 0; i < 5 + k; ++i) p.push_back(int32_t((k * 101 + i * 7) % 1400));
    prompts.push_back(p);
  }
  std::vector<std::vector<int32_t>> alone;
  {
    SchedulerOptions o;
    o.parallel = 1;
    o.prefix_cache_bytes = 0;
    Scheduler sch(s.engine(), s.tokenizer(), o);
    for (size_t i = 0; i < prompts.size(); ++i) alone.push_back(collect(*sch.submit(request(prompts[i], 12, 0.0f, 1))).tokens);
  }
  SchedulerOptions o;
  o.parallel = 4;
  o.prefill_chunk = 24;
  o.prefix_cache_bytes = uint64_t(1) << 30;
  Scheduler sch(s.engine(), s.tokenizer(), o);
  int64_t cached = 0;
  for (int round = 0; round < 2; ++round) {  // the second round reuses the first's prefixes
    std::vector<std::shared_ptr<RequestHandle>> hs;
    sch.run_between_steps([&] {  // one admission sees them all: the first round shares a running prefix
      for (const auto& p : prompts) hs.push_back(sch.submit(request(p, 12, 0.0f, 1)));
    });
    for (size_t i = 0; i < hs.size(); ++i) {
      const auto r = collect(*hs[i]);
      EXPECT_EQ(r.tokens, alone[i]) << "round " << round << " prompt " << i;
      cached += r.cached_tokens;
    }
  }
  EXPECT_GT(cached, 0) << "no prefix was reused";
  const auto st = test::settled_stats(sch);
  EXPECT_EQ(st.running_shares, 3);  // the first round: three forked the first request's 90 tokens
  EXPECT_GE(st.prefix_cache_hits, 4);  // the second round: every request
}
