// A request inside the scheduler: its sequence, sampler, streaming decoder and stop matcher,
// and the channel its events go out through. Only the scheduler thread touches the state; the
// channel is shared with the caller's handle.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>

#include "runtime/tokenizer/tokenizer.h"
#include "serve/scheduler/scheduler.h"
#include "serve/scheduler/stop_matcher.h"
#include "serve/scheduler/token_sampler.h"

namespace moe::serve {

struct RequestState;

// Events from the scheduler thread to the caller, in order; the last one has finish set.
class Channel : public RequestHandle {
 public:
  std::optional<GenerationEvent> next(std::chrono::milliseconds timeout) override {
    std::unique_lock lk(m_);
    if (!cv_.wait_for(lk, timeout, [&] { return !events_.empty() || drained_; }) || events_.empty()) return std::nullopt;
    GenerationEvent e = std::move(events_.front());
    events_.pop_front();
    if (e.finish != FinishReason::none) drained_ = true;
    return e;
  }
  void cancel() override { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  void push(GenerationEvent e) {
    {
      std::lock_guard lk(m_);
      events_.push_back(std::move(e));
    }
    cv_.notify_all();
  }
  // Ends a request that never ran (cancelled in the queue, shutdown).
  void close_with(FinishReason why, const std::string& error, const RequestState& r);

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<GenerationEvent> events_;
  bool drained_ = false;  // the last event was taken
  std::atomic<bool> cancelled_{false};
};

struct RequestState {
  using clock = std::chrono::steady_clock;

  RequestState(GenerationRequest r, int64_t vocab, const Tokenizer& tok)
      : req(std::move(r)),
        sampler(std::make_unique<TokenSampler>(req.sampling, vocab, req.constraint)),
        decoder(tok),
        stops(req.stop) {}

  GenerationRequest req;
  std::shared_ptr<Channel> channel = std::make_shared<Channel>();
  SeqId seq = -1;
  int64_t reserved_kv = 0;  // bytes admission control counts for this request while it runs
  int64_t fed = 0;     // prompt tokens in the KV
  int64_t cached = 0;  // of which from the prefix cache
  uint64_t cache_entry = 0;  // the prefix-cache entry it forked from, pinned while it runs (0: none)
  // Admitted to share the first `share_tokens` prompt tokens of `share_from`, a running request
  // that has not computed them yet: until it has, this one has no sequence (seq -1) and feeds
  // nothing; then it forks them (Scheduler::Impl::resolve_shares).
  std::shared_ptr<RequestState> share_from;
  int64_t share_tokens = 0;
  std::vector<int32_t> generated;
  int32_t next = 0;    // the last drawn token, fed by the next step
  std::unique_ptr<TokenSampler> sampler;
  StreamDecoder decoder;
  StopMatcher stops;
  std::string pending_text;
  std::vector<TokenLogprob> pending_logprobs, prompt_logprobs;
  bool sent_first = false, done = false;
  FinishReason finish_reason = FinishReason::none;
  std::string error;
  clock::time_point started;

  bool decoding() const { return !done && !generated.empty(); }

  void add_prompt_logprob(TokenLogprob lp, const Tokenizer& tok) {
    lp.text = tok.decode(std::span(&lp.token, 1));
    prompt_logprobs.push_back(std::move(lp));
  }

  // Sends what is pending: always the first event (time to first token) and the last.
  void emit(bool last) {
    if (!last && sent_first && pending_text.empty() && pending_logprobs.empty() && !req.event_per_token) return;
    GenerationEvent e;
    e.text = std::move(pending_text);
    e.logprobs = std::move(pending_logprobs);
    pending_text.clear();
    pending_logprobs.clear();
    if (!sent_first) {
      e.first = true;
      e.prompt_logprobs = std::move(prompt_logprobs);
      sent_first = true;
    }
    if (last) {
      e.finish = finish_reason;
      e.error = error;
      e.prompt_tokens = int64_t(req.prompt.size());
      e.cached_tokens = cached;
      e.completion_tokens = int64_t(generated.size());
    }
    channel->push(std::move(e));
  }
};

inline void Channel::close_with(FinishReason why, const std::string& error, const RequestState& r) {
  GenerationEvent e;
  e.first = true;
  e.finish = why;
  e.error = error;
  e.prompt_tokens = int64_t(r.req.prompt.size());
  push(std::move(e));
}

}  // namespace moe::serve
