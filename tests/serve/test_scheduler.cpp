// Continuous batching (serve/scheduler/scheduler.h) on the tiny model: the same tokens as
// runtime generate(), alone or among others, whatever the chunking; stop rules; cancellation;
// errors; drain.
#include "scheduler_util.h"

#include <stdexcept>
#include <thread>

#include "serve/scheduler/token_sampler.h"

using namespace moe;
using namespace moe::serve;
using test::collect;
using test::request;
using test::Result;

namespace {

std::vector<int32_t> prompt_of(const std::string& text) { return test::tiny_session().tokenizer().encode(text, false); }

const std::vector<std::string> kPrompts = {
    "def fibonacci(n):\n    ",
    "<|im_start|>user\nWhat is the median of 3, 9, 4?<|im_end|>\n<|im_start|>assistant\n",
    "import os\nimport sys\n\nclass Loader:\n    def __init__(self, path):\n        self.path = path\n    def read(self):",
    "The",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nConvert 5 km to mi.<|im_end|>\n<|im_start|>assistant\n",
    "for i in range(10):\n    print(i",
};

SchedulerOptions opts(int parallel, int chunk, int64_t step_tokens, uint64_t cache = 0) {
  SchedulerOptions o;
  o.parallel = parallel;
  o.prefill_chunk = chunk;
  o.step_tokens = step_tokens;
  o.prefix_cache_bytes = cache;
  return o;
}

}  // namespace

TEST(Scheduler, GreedyEqualsGenerate) {
  Session& s = test::tiny_session();
  Scheduler sch(s.engine(), s.tokenizer(), opts(4, 512, 2048));
  for (const auto& p : kPrompts) {
    const auto ids = prompt_of(p);
    GenerateOptions g;
    g.max_new_tokens = 24;
    const auto ref = generate(s.engine(), {ids}, g)[0];
    const auto r = collect(*sch.submit(request(ids, 24, 0.0f, 1)));
    EXPECT_EQ(r.tokens, ref) << p;
    EXPECT_EQ(r.text, s.tokenizer().decode(ref)) << p;
    EXPECT_EQ(r.finish, FinishReason::length);
    EXPECT_EQ(r.completion_tokens, 24);
    EXPECT_EQ(r.prompt_tokens, int64_t(ids.size()));
    EXPECT_EQ(r.first_events, 1);
  }
}

// Alone (one at a time, whole prompts) and together (all at once, 3-token prefill chunks and a
// small step budget so prefill and decode interleave): the same tokens for the same seeds.
TEST(Scheduler, SameTokensAloneAndAmongOthers) {
  Session& s = test::tiny_session();
  std::vector<Result> alone;
  {
    Scheduler sch(s.engine(), s.tokenizer(), opts(1, 512, 2048));
    for (size_t i = 0; i < kPrompts.size(); ++i) alone.push_back(collect(*sch.submit(request(prompt_of(kPrompts[i]), 20, 0.9f, 100 + i))));
  }
  Scheduler sch(s.engine(), s.tokenizer(), opts(4, 3, 9));
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (size_t i = 0; i < kPrompts.size(); ++i) hs.push_back(sch.submit(request(prompt_of(kPrompts[i]), 20, 0.9f, 100 + i)));
  for (size_t i = 0; i < hs.size(); ++i) {
    const auto r = collect(*hs[i]);
    EXPECT_EQ(r.tokens, alone[i].tokens) << kPrompts[i];
    EXPECT_EQ(r.text, alone[i].text);
    EXPECT_EQ(r.tokens.size(), 20u);
  }
  EXPECT_GT(test::settled_stats(sch).steps, 20);
  EXPECT_EQ(test::settled_stats(sch).generated_tokens, int64_t(20 * kPrompts.size()));
  int64_t prompt_tokens = 0;  // every prompt token went through the engine once, 3 at a time
  for (const auto& p : kPrompts) prompt_tokens += int64_t(prompt_of(p).size());
  EXPECT_EQ(test::settled_stats(sch).prefilled_tokens, prompt_tokens);
}

TEST(Scheduler, EventPerTokenWithoutLogprobs) {
  Session& s = test::tiny_session();
  Scheduler sch(s.engine(), s.tokenizer(), opts(2, 64, 256));
  auto req = request(prompt_of(kPrompts[0]), 12, 0.0f, 1);
  req.logprobs = -1;
  req.event_per_token = true;
  const auto r = collect(*sch.submit(req));
  EXPECT_TRUE(r.tokens.empty());  // no logprobs asked
  EXPECT_EQ(r.completion_tokens, 12);
  EXPECT_EQ(r.events, 12);  // the first token's event, 10 more, and the last
}

TEST(Scheduler, StopTokenStopStringAndLength) {
  Session& s = test::tiny_session();
  Scheduler sch(s.engine(), s.tokenizer(), opts(2, 64, 256));
  const auto ids = prompt_of(kPrompts[0]);
  const auto free_run = collect(*sch.submit(request(ids, 30, 0.0f, 1)));
  ASSERT_GE(free_run.tokens.size(), 10u);
  // Stop token: the 5th generated token; it is counted but not in the text.
  auto r1 = request(ids, 30, 0.0f, 1);
  r1.stop_ids = {free_run.tokens[4]};
  const auto a = collect(*sch.submit(r1));
  EXPECT_EQ(a.finish, FinishReason::stop);
  const size_t first = size_t(std::find(free_run.tokens.begin(), free_run.tokens.end(), free_run.tokens[4]) - free_run.tokens.begin());
  EXPECT_EQ(a.completion_tokens, int64_t(first + 1));
  EXPECT_EQ(a.text, s.tokenizer().decode(std::span(free_run.tokens).first(first)));
  // Stop string: a piece of the free-running text; the output ends right before it.
  const std::string stop = free_run.text.substr(free_run.text.size() / 2, 3);
  auto r2 = request(ids, 30, 0.0f, 1);
  r2.stop = {stop};
  const auto b = collect(*sch.submit(r2));
  EXPECT_EQ(b.finish, FinishReason::stop);
  EXPECT_EQ(b.text, free_run.text.substr(0, free_run.text.find(stop)));
  EXPECT_EQ(free_run.finish, FinishReason::length);
}

TEST(Scheduler, CancelFreesTheSequence) {
  Session& s = test::tiny_session();
  const size_t before = s.engine().n_sequences();
  Scheduler sch(s.engine(), s.tokenizer(), opts(2, 64, 256));
  auto h = sch.submit(request(prompt_of(kPrompts[2]), 400, 0.8f, 3));
  auto first = h->next(std::chrono::seconds(60));
  ASSERT_TRUE(first && first->first);
  h->cancel();
  Result r = collect(*h);
  EXPECT_EQ(r.finish, FinishReason::cancelled);
  EXPECT_LT(r.completion_tokens, 400);
  sch.run_between_steps([] {});  // a full loop turn after the cancellation
  EXPECT_EQ(test::settled_stats(sch).running, 0);
  EXPECT_EQ(s.engine().n_sequences(), before);
}

// A draw that throws (here a logits processor failing at its third token) ends that request
// with the reason; the scheduler and the request beside it go on.
TEST(Scheduler, AFailingDrawEndsOnlyItsRequest) {
  struct Failing final : serve::LogitsProcessor {
    int calls = 0;
    void apply(std::span<float>) override {
      if (++calls == 3) throw std::runtime_error("the processor broke");
    }
    void accept(int32_t) override {}
  };
  Session& s = test::tiny_session();
  Scheduler sch(s.engine(), s.tokenizer(), opts(2, 64, 256));
  auto bad = request(prompt_of(kPrompts[0]), 10, 0.8f, 5);
  bad.constraint = std::make_shared<Failing>();
  auto hb = sch.submit(bad);
  auto hg = sch.submit(request(prompt_of(kPrompts[1]), 10, 0.8f, 6));
  const Result rb = collect(*hb), rg = collect(*hg);
  EXPECT_EQ(rb.finish, FinishReason::error);
  EXPECT_NE(rb.error.find("drawing the next token failed: the processor broke"), std::string::npos) << rb.error;
  EXPECT_EQ(rb.completion_tokens, 2);
  EXPECT_EQ(rg.finish, FinishReason::length);
  EXPECT_EQ(rg.completion_tokens, 10);
}

TEST(Scheduler, RefusesWhatItCannotServe) {
  Session& s = test::tiny_session();
  SchedulerOptions o = opts(1, 64, 256);
  o.context = 64;
  o.max_queue = 1;
  Scheduler sch(s.engine(), s.tokenizer(), o);
  auto kind = [&](GenerationRequest r) {
    try {
      sch.submit(std::move(r));
    } catch (const SchedulerError& e) {
      return int(e.kind);
    }
    return -1;
  };
  EXPECT_EQ(kind(request({}, 5, 0, 1)), int(SchedulerError::Kind::invalid));
  EXPECT_EQ(kind(request({1, 2, 999999}, 5, 0, 1)), int(SchedulerError::Kind::invalid));
  EXPECT_EQ(kind(request(std::vector<int32_t>(60, 5), 5, 0, 1)), int(SchedulerError::Kind::too_long));
  auto bad_temp = request({1, 2}, 5, -1.0f, 1);
  EXPECT_EQ(kind(bad_temp), int(SchedulerError::Kind::invalid));
  auto bad_bias = request({1, 2}, 5, 0.0f, 1);
  bad_bias.sampling.logit_bias = {{int32_t(s.model().cfg.vocab_size), 1.0f}};
  EXPECT_EQ(kind(bad_bias), int(SchedulerError::Kind::invalid));
  // Queue full: submitted from the scheduler thread, so nothing is admitted in between.
  std::vector<int> kinds;
  std::vector<std::shared_ptr<RequestHandle>> hs;
  sch.run_between_steps([&] {
    for (int i = 0; i < 2; ++i) {
      try {
        hs.push_back(sch.submit(request({1, 2, 3}, 3, 0, 1)));
        kinds.push_back(-1);
      } catch (const SchedulerError& e) {
        kinds.push_back(int(e.kind));
      }
    }
  });
  EXPECT_EQ(kinds, (std::vector<int>{-1, int(SchedulerError::Kind::queue_full)}));
  for (auto& h : hs) EXPECT_EQ(collect(*h).finish, FinishReason::length);
}

TEST(Scheduler, DrainFinishesThenRefuses) {
  Session& s = test::tiny_session();
  Scheduler sch(s.engine(), s.tokenizer(), opts(2, 64, 256));
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (int i = 0; i < 4; ++i) hs.push_back(sch.submit(request(prompt_of(kPrompts[size_t(i)]), 12, 0.5f, 9)));
  sch.drain();
  EXPECT_EQ(test::settled_stats(sch).running, 0);
  for (auto& h : hs) EXPECT_EQ(collect(*h).completion_tokens, 12);
  try {
    sch.submit(request({1, 2}, 2, 0, 1));
    FAIL() << "accepted a request after drain()";
  } catch (const SchedulerError& e) {
    EXPECT_EQ(e.kind, SchedulerError::Kind::draining);
  }
}

TEST(Scheduler, PromptLogprobsMatchTheLogits) {
  Session& s = test::tiny_session();
  Scheduler sch(s.engine(), s.tokenizer(), opts(2, 5, 64));  // chunks of 5: rows across chunk ends
  const auto ids = prompt_of(kPrompts[2]);
  auto req = request(ids, 2, 0.0f, 1);
  req.prompt_logprobs = true;
  req.logprobs = 2;
  const auto r = collect(*sch.submit(req));
  ASSERT_EQ(r.prompt_logprobs.size(), ids.size() - 1);
  std::vector<float> all;
  sch.run_between_steps([&] {
    InferenceEngine& e = s.engine();
    const SeqId q = e.create_sequence();
    all = e.forward(std::vector<BatchItem>{{q, ids, true}});
    e.free_sequence(q);
  });
  const size_t V = size_t(s.model().cfg.vocab_size);
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    const auto want = token_logprob(std::span<const float>(all).subspan(i * V, V), ids[i + 1], 2);
    EXPECT_EQ(r.prompt_logprobs[i].token, ids[i + 1]);
    EXPECT_NEAR(r.prompt_logprobs[i].logprob, want.logprob, 1e-4) << i;
    ASSERT_EQ(r.prompt_logprobs[i].top.size(), 2u);
    EXPECT_EQ(r.prompt_logprobs[i].top[0].first, want.top[0].first);
  }
}

TEST(Scheduler, RoutingStatsCountEveryToken) {
  Session& s = test::tiny_session();
  Scheduler sch(s.engine(), s.tokenizer(), opts(2, 64, 256));
  const auto ids = prompt_of(kPrompts[1]);
  collect(*sch.submit(request(ids, 8, 0.0f, 1)));
  const auto st = test::settled_stats(sch);
  const auto& cfg = s.model().cfg;
  ASSERT_FALSE(st.expert_tokens.empty());
  int64_t sum = 0;
  for (int64_t c : st.expert_tokens.back()) sum += c;
  // Every token fed (the prompt and 7 of the 8 drawn) went to top_k experts of the last layer.
  EXPECT_EQ(sum, int64_t(ids.size() + 7) * cfg.router.top_k);
  for (double h : st.router_entropy) EXPECT_GE(h, 0.0);
  // Expert reads: 7 one-token decode steps read top_k experts per MoE layer each; the prompt's
  // step reads each chosen expert once, however many of its tokens chose it.
  const int64_t layers = int64_t(st.expert_tokens.size()), E = int64_t(st.expert_tokens.back().size());
  const int64_t prompt_reads = st.expert_reads - 7 * layers * cfg.router.top_k;
  EXPECT_GE(prompt_reads, layers * cfg.router.top_k);
  EXPECT_LE(prompt_reads, layers * E);
  EXPECT_LT(prompt_reads, int64_t(ids.size()) * layers * cfg.router.top_k);
  // The decode-only split (serve-bench's bound): the 7 decode steps, their 7 tokens and reads.
  EXPECT_EQ(st.decode_steps, 7);
  EXPECT_EQ(st.decode_tokens, 7);
  EXPECT_EQ(st.decode_expert_reads, 7 * layers * cfg.router.top_k);
  EXPECT_GT(st.decode_busy_seconds, 0.0);
  EXPECT_LT(st.decode_busy_seconds, st.busy_seconds);
}

// Admission control: with a KV budget that holds two of these requests, six of them run two at
// a time (the others wait) and give the tokens they give alone; one that could never fit is
// refused up front, saying what to change.
TEST(Scheduler, KvBudgetMakesRequestsWait) {
  Session& s = test::tiny_session();
  const auto ids = prompt_of(kPrompts[2]);
  const int max_tokens = 12;
  const int64_t page = s.engine().kv_page_rows();  // KV is reserved in whole pages
  const int64_t need = s.model().cfg.kv_bytes_per_token() * ((int64_t(ids.size()) + max_tokens + page - 1) / page * page);
  std::vector<Result> alone;
  {
    Scheduler sch(s.engine(), s.tokenizer(), opts(1, 512, 2048));
    for (int i = 0; i < 6; ++i) alone.push_back(collect(*sch.submit(request(ids, max_tokens, 0.9f, 7 + i))));
  }
  SchedulerOptions o = opts(6, 512, 2048);
  o.kv_budget_bytes = uint64_t(2 * need + need / 2);
  Scheduler sch(s.engine(), s.tokenizer(), o);
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (int i = 0; i < 6; ++i) hs.push_back(sch.submit(request(ids, max_tokens, 0.9f, 7 + i)));
  for (size_t i = 0; i < hs.size(); ++i) EXPECT_EQ(collect(*hs[i]).tokens, alone[i].tokens) << i;
  const SchedulerStats st = test::settled_stats(sch);
  EXPECT_EQ(st.peak_kv_reserved_bytes, 2 * need);  // two at once, never three
  EXPECT_GT(st.memory_waits, 0);
  EXPECT_EQ(st.kv_reserved_bytes, 0);
  try {
    sch.submit(request(ids, 3 * max_tokens + 2 * int(ids.size()), 0.0f, 1));
    ADD_FAILURE() << "a request over the whole KV budget was accepted";
  } catch (const SchedulerError& e) {
    EXPECT_EQ(e.kind, SchedulerError::Kind::too_long);
    EXPECT_NE(std::string(e.what()).find("--kv-budget"), std::string::npos) << e.what();
  }
}
