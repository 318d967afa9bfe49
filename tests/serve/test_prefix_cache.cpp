// Prefix reuse (serve/scheduler/prefix_cache.h): a request that extends a finished one forks
// its KV; outputs are the same with and without the cache; the byte bound evicts LRU entries.
#include "scheduler_util.h"

#include "serve/scheduler/prefix_cache.h"

using namespace moe;
using namespace moe::serve;
using test::collect;
using test::request;
using test::Result;

namespace {

std::vector<int32_t> chat(int turns) {
  std::string s = "<|im_start|>system\nYou are a helpful assistant. Tools: calculator, median, mean, convert, date_diff, lookup.<|im_end|>\n";
  for (int i = 0; i < turns; ++i)
    s += "<|im_start|>user\nWhat is " + std::to_string(12 + i) + "*7+3?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": \"" +
         std::to_string(12 + i) + "*7+3\"}}\n</tool_call><|im_end|>\n";
  s += "<|im_start|>user\nAnd the mean of 4, 8, 15?<|im_end|>\n<|im_start|>assistant\n";
  return test::tiny_session().tokenizer().encode(s, false);
}

SchedulerOptions with_cache(uint64_t bytes) {
  SchedulerOptions o;
  o.parallel = 4;
  o.prefix_cache_bytes = bytes;
  return o;
}

}  // namespace

TEST(PrefixCache, BlockHashesAreChained) {
  std::vector<int32_t> a(40), b(40);
  for (int i = 0; i < 40; ++i) a[size_t(i)] = b[size_t(i)] = i;
  b[20] = 99;
  const auto ha = block_hashes(a, 16), hb = block_hashes(b, 16);
  ASSERT_EQ(ha.size(), 2u);
  EXPECT_EQ(ha[0], hb[0]);
  EXPECT_NE(ha[1], hb[1]);
  std::vector<int32_t> c(a);
  c[0] = 7;  // an earlier block changes every later hash
  EXPECT_NE(block_hashes(c, 16)[1], ha[1]);
}

// An agent loop: each turn resends the whole conversation (the model's own tokens included)
// plus one more user message; the cache must give the tokens a cold run gives.
namespace {

std::vector<Result> agent_loop(Scheduler& sch, int turns) {
  const Tokenizer& tok = test::tiny_session().tokenizer();
  std::vector<int32_t> conv = chat(0);
  std::vector<Result> out;
  for (int t = 0; t < turns; ++t) {
    out.push_back(collect(*sch.submit(request(conv, 16, 0.7f, 40 + t))));
    conv.insert(conv.end(), out.back().tokens.begin(), out.back().tokens.end());
    const auto more = tok.encode("<|im_end|>\n<|im_start|>user\nWhat is " + std::to_string(t) + "+1?<|im_end|>\n<|im_start|>assistant\n", false);
    conv.insert(conv.end(), more.begin(), more.end());
  }
  return out;
}

}  // namespace

TEST(PrefixCache, AgentTurnsReuseTheConversationAndGiveTheSameTokens) {
  Session& s = test::tiny_session();
  std::vector<Result> off;
  {
    Scheduler sch(s.engine(), s.tokenizer(), with_cache(0));
    off = agent_loop(sch, 4);
  }
  Scheduler sch(s.engine(), s.tokenizer(), with_cache(256ull << 20));
  const std::vector<Result> on = agent_loop(sch, 4);
  for (size_t t = 0; t < 4; ++t) {
    EXPECT_EQ(on[t].tokens, off[t].tokens) << "turn " << t;
    EXPECT_EQ(off[t].cached_tokens, 0);
  }
  // Turn t+1 reuses all of turn t: its prompt and the tokens it generated, but the last.
  for (size_t t = 1; t < 4; ++t)
    EXPECT_EQ(on[t].cached_tokens, on[t - 1].prompt_tokens + on[t - 1].completion_tokens - 1) << "turn " << t;
  const auto st = test::settled_stats(sch);
  EXPECT_EQ(st.prefix_cache_lookups, 4);
  EXPECT_EQ(st.prefix_cache_hits, 3);
  EXPECT_EQ(st.prefix_cache_entries, 1);  // each turn replaced the one it extended
  // A request that shares only the system prompt and first question forks the same entry.
  const auto other = collect(*sch.submit(request(chat(2), 8, 0.0f, 1)));
  EXPECT_GE(other.cached_tokens, PrefixCache::kBlock);
  EXPECT_EQ(test::settled_stats(sch).prefix_cache_entries, 2);
}

TEST(PrefixCache, BoundEvictsLeastRecentlyUsed) {
  Session& s = test::tiny_session();
  const auto& c = s.model().cfg;
  const uint64_t per_token = uint64_t(c.n_layers) * 2 * c.n_kv_heads * c.head_dim * sizeof(float);
  // Room for about 1.5 conversations of chat(1)'s length.
  const uint64_t bound = uint64_t(double(chat(1).size() + 16) * 1.5 * double(per_token));
  Scheduler sch(s.engine(), s.tokenizer(), with_cache(bound));
  auto p1 = chat(1), p2 = chat(1);
  p2[3] = p2[3] == 5 ? 6 : 5;  // a different conversation from the 4th token on
  collect(*sch.submit(request(p1, 16, 0.0f, 1)));
  collect(*sch.submit(request(p2, 16, 0.0f, 1)));
  auto st = test::settled_stats(sch);
  EXPECT_EQ(st.prefix_cache_entries, 1);
  EXPECT_EQ(st.prefix_cache_evictions, 1);
  EXPECT_LE(uint64_t(st.prefix_cache_bytes), bound);
  EXPECT_LE(uint64_t(st.kv_bytes), bound);  // nothing runs: the engine holds only the cache's KV
  // p2 is still there; p1 was evicted.
  EXPECT_GT(collect(*sch.submit(request(p2, 4, 0.0f, 1))).cached_tokens, 0);
  EXPECT_EQ(collect(*sch.submit(request(p1, 4, 0.0f, 1))).cached_tokens, 0);
}

TEST(PrefixCache, OffMeansNoSequenceIsKept) {
  Session& s = test::tiny_session();
  const size_t before = s.engine().n_sequences();
  {
    Scheduler sch(s.engine(), s.tokenizer(), with_cache(0));
    collect(*sch.submit(request(chat(1), 4, 0.0f, 1)));
    EXPECT_EQ(s.engine().n_sequences(), before);
  }
  {
    Scheduler sch(s.engine(), s.tokenizer(), with_cache(64ull << 20));
    collect(*sch.submit(request(chat(1), 4, 0.0f, 1)));
    EXPECT_EQ(s.engine().n_sequences(), before + 1);
  }
  EXPECT_EQ(s.engine().n_sequences(), before);  // the cache frees its sequences when it goes
}

// With a KV budget the prefix cache lives inside it: a waiting request takes the cached KV's
// memory (LRU entries evicted) instead of waiting behind it, and reservations plus cached bytes
// never pass the budget.
TEST(PrefixCache, SharesTheKvBudgetWithRunningSequences) {
  Session& s = test::tiny_session();
  const int64_t per_token = s.model().cfg.kv_bytes_per_token();
  const int max_tokens = 8;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 4; ++i) {
    auto p = chat(1);
    p[3] = int32_t(5 + i);  // four different conversations from the 4th token on
    prompts.push_back(std::move(p));
  }
  const int64_t need = per_token * int64_t(prompts[0].size() + max_tokens);
  SchedulerOptions o = with_cache(1ull << 30);  // the cache's own bound would keep them all
  o.kv_budget_bytes = uint64_t(2 * need + need / 2);
  std::vector<Result> out;
  {
    Scheduler sch(s.engine(), s.tokenizer(), o);
    // One at a time, so each finished conversation is offered to the cache while the next runs.
    for (const auto& p : prompts) out.push_back(collect(*sch.submit(request(p, max_tokens, 0.0f, 1))));
    const SchedulerStats st = test::settled_stats(sch);
    EXPECT_LE(uint64_t(st.peak_kv_committed_bytes), o.kv_budget_bytes);
    EXPECT_GT(st.prefix_cache_evictions, 0);
    EXPECT_LE(uint64_t(st.prefix_cache_bytes), o.kv_budget_bytes);
    EXPECT_GT(st.prefix_cache_entries, 0);
    // The most recent conversation survived eviction; its next turn reuses it.
    auto next = prompts.back();
    next.insert(next.end(), out.back().tokens.begin(), out.back().tokens.end() - 1);
    EXPECT_GT(collect(*sch.submit(request(next, 4, 0.0f, 1))).cached_tokens, 0);
    EXPECT_LE(uint64_t(test::settled_stats(sch).peak_kv_committed_bytes), o.kv_budget_bytes);
  }
  // The same tokens as without a budget.
  Scheduler sch(s.engine(), s.tokenizer(), with_cache(1ull << 30));
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(collect(*sch.submit(request(prompts[i], max_tokens, 0.0f, 1))).tokens, out[i].tokens) << i;
}

// A hit's fork holds the cached entry's whole KV pages by reference (the CPU engine's pages), so
// a budget with room for the entry and the next turn's own rows, but not for a second copy of
// the conversation, runs the next turn from the cache without evicting anything; the engine's
// real KV never passes the budget. Before pages, the entry was evicted to make room and the
// turn recomputed its whole prompt.
TEST(PrefixCache, HitsShareTheEntrysPagesWithinTheBudget) {
  Session& s = test::tiny_session();
  ASSERT_GT(s.engine().kv_page_rows(), 1);
  const int64_t per_token = s.model().cfg.kv_bytes_per_token(), page = s.engine().kv_page_rows();
  const auto rows = [&](int64_t n) { return (n + page - 1) / page * page; };
  const int max_tokens = 8;
  const auto p1 = chat(3);
  // Turn 1 alone must fit, and then the entry (its tokens) plus turn 2's rows past the shared
  // pages; a copy of the whole conversation must not.
  SchedulerOptions o = with_cache(1ull << 30);
  const int64_t entry_rows = rows(int64_t(p1.size()) + max_tokens - 1);
  o.kv_budget_bytes = uint64_t(per_token * (entry_rows + 3 * page + int64_t(max_tokens) + 64));
  Scheduler sch(s.engine(), s.tokenizer(), o);
  const Result t1 = collect(*sch.submit(request(p1, max_tokens, 0.0f, 1)));
  ASSERT_EQ(t1.completion_tokens, max_tokens);
  auto p2 = p1;
  p2.insert(p2.end(), t1.tokens.begin(), t1.tokens.end() - 1);
  const auto more = s.tokenizer().encode("<|im_end|>\n<|im_start|>user\nThanks.<|im_end|>\n<|im_start|>assistant\n", false);
  p2.insert(p2.end(), more.begin(), more.end());
  ASSERT_GT(uint64_t(per_token * (entry_rows + rows(int64_t(p2.size()) + max_tokens))), o.kv_budget_bytes)
      << "the budget must be too small for two copies";
  const Result t2 = collect(*sch.submit(request(p2, max_tokens, 0.0f, 2)));
  EXPECT_EQ(t2.cached_tokens, int64_t(p1.size()) + max_tokens - 1);
  const SchedulerStats st = test::settled_stats(sch);
  EXPECT_EQ(st.prefix_cache_evictions, 0);
  EXPECT_LE(uint64_t(st.peak_kv_bytes), o.kv_budget_bytes);
  EXPECT_LE(uint64_t(st.peak_kv_committed_bytes), o.kv_budget_bytes);
  // The same tokens as a run without cache or budget.
  Scheduler cold(s.engine(), s.tokenizer(), with_cache(0));
  EXPECT_EQ(collect(*cold.submit(request(p2, max_tokens, 0.0f, 2))).tokens, t2.tokens);
}
