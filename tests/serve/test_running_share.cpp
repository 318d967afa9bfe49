// Requests that arrive together with one long shared prefix (a batch job's system prompt, an
// agent's parallel sub-tasks): the first computes it, the others wait without a sequence and then
// fork its KV. Same tokens as without reuse; the prefix is computed once; a source that leaves
// early (cancelled) leaves its waiters to compute the prefix themselves.
#include "scheduler_util.h"

#include <numeric>

#include "serve/scheduler/prefix_cache.h"

using namespace moe;
using namespace moe::serve;

namespace {

// A long system prompt (about 150 tokens) and a different question for each request.
std::vector<std::vector<int32_t>> prompts(int n) {
  const Tokenizer& tok = test::tiny_session().tokenizer();
  std::string system = "<|im_start|>system\nYou are a helpful assistant with these tools:";
  for (const char* t : {"calculator", "median", "mean", "convert", "date_diff", "lookup", "weather", "search"})
    system += std::string(" ") + t + " (takes a JSON object with the fields the user names and returns a number or a string);";
  system += "<|im_end|>\n";
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < n; ++i)
    out.push_back(tok.encode(system + "<|im_start|>user\nWhat is " + std::to_string(17 * i + 3) + " times 7?<|im_end|>\n<|im_start|>assistant\n", false));
  return out;
}

SchedulerOptions options(uint64_t cache_bytes) {
  SchedulerOptions o;
  o.parallel = 4;
  o.prefill_chunk = 32;  // the first request computes the shared prefix over several steps
  o.prefix_cache_bytes = cache_bytes;
  return o;
}

// Submits every prompt between two steps, so that one admission sees them all.
std::vector<std::shared_ptr<RequestHandle>> submit_together(Scheduler& sch, const std::vector<std::vector<int32_t>>& ps) {
  std::vector<std::shared_ptr<RequestHandle>> hs;
  sch.run_between_steps([&] {
    for (size_t i = 0; i < ps.size(); ++i) hs.push_back(sch.submit(test::request(ps[i], 12, 0.8f, 100 + i)));
  });
  return hs;
}

std::vector<test::Result> without_reuse(const std::vector<std::vector<int32_t>>& ps) {
  Session& s = test::tiny_session();
  Scheduler sch(s.engine(), s.tokenizer(), options(0));
  std::vector<test::Result> out;
  for (auto& h : submit_together(sch, ps)) out.push_back(test::collect(*h));
  EXPECT_EQ(test::settled_stats(sch).running_shares, 0);
  return out;
}

}  // namespace

TEST(RunningShare, RequestsArrivingTogetherComputeTheirSharedPrefixOnce) {
  Session& s = test::tiny_session();
  const auto ps = prompts(4);
  // What each shares with the first (the questions' numbers may share a token more or less).
  std::vector<int64_t> shared(ps.size(), 0);
  for (size_t i = 1; i < ps.size(); ++i) {
    shared[i] = common_prefix(ps[i], ps[0]);
    ASSERT_GT(shared[i], 100);  // long enough to wait for, and past several 32-token chunks
  }
  const auto off = without_reuse(ps);
  Scheduler sch(s.engine(), s.tokenizer(), options(64ull << 20));
  const auto hs = submit_together(sch, ps);
  for (size_t i = 0; i < hs.size(); ++i) {
    const test::Result r = test::collect(*hs[i]);
    EXPECT_EQ(r.tokens, off[i].tokens) << "request " << i;
    EXPECT_EQ(r.finish, off[i].finish) << "request " << i;
    EXPECT_EQ(r.cached_tokens, shared[i]) << "request " << i;  // the others wait for the first
  }
  const auto st = test::settled_stats(sch);
  EXPECT_EQ(st.running_shares, 3);
  EXPECT_EQ(st.prefix_cache_hits, 0);  // nothing had finished when they came
  const int64_t total = std::accumulate(ps.begin(), ps.end(), int64_t(0), [](int64_t a, const auto& p) { return a + int64_t(p.size()); });
  const int64_t reused = std::accumulate(shared.begin(), shared.end(), int64_t(0));
  EXPECT_EQ(st.prefilled_tokens, total - reused);
  EXPECT_EQ(st.cached_tokens, reused);
}

TEST(RunningShare, OffWithThePrefixCache) {
  const auto ps = prompts(3);
  const auto off = without_reuse(ps);  // asserts no share
  for (const auto& r : off) EXPECT_EQ(r.cached_tokens, 0);
}

// The source is cancelled before it has computed the shared prefix; one waiter is cancelled too.
// The others fork what the source had computed and compute the rest, with the tokens they would
// have had. (Chunks of 4 tokens: the cancel comes at the first step boundary once the source has
// a block, long before its 54th chunk would have finished the shared part.)
TEST(RunningShare, WaitersOutliveACancelledSource) {
  Session& s = test::tiny_session();
  const auto ps = prompts(4);
  const auto off = without_reuse(ps);
  const size_t before = s.engine().n_sequences();
  {
    SchedulerOptions o = options(64ull << 20);
    o.prefill_chunk = 4;
    Scheduler sch(s.engine(), s.tokenizer(), o);
    const auto hs = submit_together(sch, ps);
    for (bool cancelled = false; !cancelled;)
      sch.run_between_steps([&] {
        if (sch.stats().prefilled_tokens < PrefixCache::kBlock) return;  // a block at least to hand over
        hs[0]->cancel();
        hs[2]->cancel();
        cancelled = true;
      });
    for (size_t i = 0; i < hs.size(); ++i) {
      const test::Result r = test::collect(*hs[i]);
      if (i == 0 || i == 2) {
        EXPECT_EQ(r.finish, FinishReason::cancelled) << "request " << i;
        continue;
      }
      EXPECT_EQ(r.tokens, off[i].tokens) << "request " << i;
      EXPECT_EQ(r.finish, off[i].finish) << "request " << i;
      // What the source had computed: whole chunks, fewer than the shared prefix.
      EXPECT_GT(r.cached_tokens, 0) << "request " << i;
      EXPECT_LT(r.cached_tokens, common_prefix(ps[i], ps[0])) << "request " << i;
      EXPECT_EQ(r.cached_tokens % 4, 0) << "request " << i;
    }
    EXPECT_EQ(test::settled_stats(sch).running_shares, 2);
  }
  EXPECT_EQ(s.engine().n_sequences(), before);  // nothing leaked
}

// Prompts shorter than a block share nothing (a one-token prompt left nothing to fork before the
// fix that this guards), whatever runs beside them.
TEST(RunningShare, ShortPromptsNeverShare) {
  Session& s = test::tiny_session();
  auto ps = prompts(2);
  ps.push_back({ps[0][0]});
  ps.push_back(std::vector<int32_t>(ps[0].begin(), ps[0].begin() + 5));
  Scheduler sch(s.engine(), s.tokenizer(), options(64ull << 20));
  const auto hs = submit_together(sch, ps);
  for (size_t i = 0; i < hs.size(); ++i) {
    const test::Result r = test::collect(*hs[i]);
    EXPECT_EQ(r.finish, FinishReason::length) << "request " << i;
    EXPECT_EQ(r.cached_tokens, i == 1 ? common_prefix(ps[1], ps[0]) : 0) << "request " << i;
  }
  EXPECT_EQ(test::settled_stats(sch).running_shares, 1);
}
