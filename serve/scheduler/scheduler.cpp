#include "serve/scheduler/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <tuple>
#include <unordered_map>

#include "runtime/model.h"
#include "storage/byte_size.h"
#include "serve/scheduler/prefix_cache.h"
#include "serve/scheduler/request_state.h"

namespace moe::serve {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::cancelled: return "cancelled";
    case FinishReason::error: return "error";
    case FinishReason::none: break;
  }
  return "none";
}

namespace {

// Expert-usage counts filled by a routing observer; shared so that the observer, which the
// engine keeps, never outlives what it writes to.
struct RoutingCounts {
  std::mutex m;
  std::vector<std::vector<int64_t>> tokens;  // [layer][expert]
  int64_t expert_reads = 0;                  // distinct (layer, expert) pairs per step, summed
  std::vector<int64_t> seen;                 // scratch: the step an expert was last counted in
  int64_t events = 0;
};

// K and V rows (MLA: latent + rotary key) per attention layer, in the engine's KV dtype; a
// recurrent model's sequence also holds its state, plus a snapshot every 256 tokens
// (EngineOptions' default).
int64_t kv_bytes_per_token(const InferenceEngine& e) {
  return e.kv_bytes_per_token() + e.model().cfg.state_bytes_per_sequence() / 256;
}

// What a sequence of `tokens` holds at most: its KV rows in whole pages, its recurrent state and
// snapshots; less the first `shared` rows (whole pages) when it shares them with a cached prefix.
int64_t kv_need(const InferenceEngine& e, int64_t tokens, int64_t shared = 0) {
  const int64_t state = e.model().cfg.state_bytes_per_sequence();
  return e.kv_bytes_per_token() * (e.kv_rows(tokens) - shared) + (state > 0 ? state * (1 + tokens / 256) : 0);
}

}  // namespace

struct Scheduler::Impl {
  InferenceEngine& engine;
  Tokenizer tok;
  SchedulerOptions o;
  int64_t context = 0;
  int64_t vocab = 0;
  std::vector<float> logits;  // the last step's, kept: a fresh 100+ MB buffer per step costs page faults

  std::mutex m;
  std::condition_variable wake;       // the loop: work arrived
  std::condition_variable idle;       // drain(): nothing left
  std::deque<std::shared_ptr<RequestState>> queue;
  std::vector<std::shared_ptr<RequestState>> running;  // admission order
  std::deque<std::pair<std::function<void()>, std::shared_ptr<std::promise<void>>>> tasks;
  bool stop = false, draining = false;
  SchedulerStats st;                  // guarded by m (copied out by stats())
  std::shared_ptr<RoutingCounts> routing = std::make_shared<RoutingCounts>();
  std::unique_ptr<PrefixCache> cache;
  int64_t reserved = 0;  // KV reserved by the running requests (scheduler thread only)
  std::thread thread;

  Impl(InferenceEngine& e, const Tokenizer& t, SchedulerOptions opts) : engine(e), tok(t), o(opts) {
    const Model& model = e.model();
    context = o.context > 0 ? o.context : model.cfg.max_position;
    vocab = model.cfg.vocab_size;
    if (o.parallel < 1) throw std::invalid_argument("parallel must be >= 1");
    if (o.prefill_chunk < 1) throw std::invalid_argument("prefill chunk must be >= 1");
    if (o.step_tokens < o.parallel) o.step_tokens = o.parallel;
    if (o.prefix_cache_bytes > 0)
      cache = std::make_unique<PrefixCache>(e, o.prefix_cache_bytes, kv_bytes_per_token(e),
                                            model.cfg.state_bytes_per_sequence());
    auto counts = routing;
    e.add_routing_observer([counts](const RoutingEvent& ev) {
      std::lock_guard lk(counts->m);
      if (size_t(ev.layer) >= counts->tokens.size()) counts->tokens.resize(size_t(ev.layer) + 1);
      auto& row = counts->tokens[size_t(ev.layer)];
      // One event is one layer of one step: an expert chosen by several of its tokens is read once.
      ++counts->events;
      for (int i = 0; i < ev.n_tokens * ev.top_k; ++i) {
        const int32_t x = ev.experts[i];
        if (x < 0) continue;
        if (size_t(x) >= row.size()) row.resize(size_t(x) + 1);
        if (size_t(x) >= counts->seen.size()) counts->seen.resize(size_t(x) + 1, 0);
        ++row[size_t(x)];
        if (counts->seen[size_t(x)] != counts->events) {
          counts->seen[size_t(x)] = counts->events;
          ++counts->expert_reads;
        }
      }
    });
    thread = std::thread([this] { loop(); });
  }

  ~Impl() {
    {
      std::lock_guard lk(m);
      stop = true;
    }
    wake.notify_all();
    thread.join();
    for (auto& r : running) finish(*r, FinishReason::cancelled, "the server is shutting down");
    for (auto& r : queue) r->channel->close_with(FinishReason::cancelled, "the server is shutting down", *r);
    cache.reset();
  }

  // Prompt + max_tokens, capped at the context: what the request's KV may grow to.
  int64_t request_tokens(const RequestState& r) const {
    return std::min<int64_t>(context, int64_t(r.req.prompt.size()) + r.req.max_tokens);
  }
  void loop();
  bool step();
  void admit();
  // Where r's prompt may start: the prefix cache's longest prefix of it, or a running request
  // whose prompt shares a longer one (by a block at least): {request, tokens}. Not both.
  using Share = std::pair<std::shared_ptr<RequestState>, int64_t>;
  std::pair<std::optional<PrefixCache::Hit>, Share> find_prefix(const RequestState& r);
  Share running_share(const std::vector<int32_t>& prompt, int64_t more_than) const;
  // Gives r its sequence from what find_prefix found: the cache's fork, the running request's
  // (now, or once it has computed the shared tokens: r waits without a sequence), or a new one.
  void start(RequestState& r, std::optional<PrefixCache::Hit> hit, Share share);
  // The waiting requests whose shared prefix is computed fork it; those whose source left first
  // (finished: its KV is likely cached now; cancelled or failed) look again.
  void resolve_shares();
  // A source cancelled before it computed all its waiters share: they fork what it has (a block
  // at least; a client's retry cancels the first try) instead of starting over.
  void hand_over(const RequestState& src);
  // r's sequence is `seq`, holding its prompt's first `fed` tokens (reused, not computed).
  void attach(RequestState& r, SeqId seq, int64_t fed);
  void finish(RequestState& r, FinishReason why, const std::string& error = {});
  // A drawn token t (with its logprob when the request asked for them) joins the request.
  void on_token(RequestState& r, int32_t t, TokenLogprob logprob);
};

void Scheduler::Impl::loop() {
  for (;;) {
    {
      std::unique_lock lk(m);
      wake.wait(lk, [&] { return stop || !queue.empty() || st.running > 0 || !tasks.empty(); });
      if (stop) return;
    }
    // Tasks run between steps, with no lock held (they may read stats()).
    for (;;) {
      std::pair<std::function<void()>, std::shared_ptr<std::promise<void>>> t;
      {
        std::lock_guard lk(m);
        if (tasks.empty()) break;
        t = std::move(tasks.front());
        tasks.pop_front();
      }
      try {
        t.first();
        t.second->set_value();
      } catch (...) {
        t.second->set_exception(std::current_exception());
      }
    }
    admit();
    step();
    std::lock_guard lk(m);
    if (queue.empty() && st.running == 0) idle.notify_all();
  }
}

// Moves queued requests into the running set (up to `parallel`), forking cached prefixes.
void Scheduler::Impl::admit() {
  // Cancelled requests leave first: their sequences are freed before the next step.
  for (size_t i = 0; i < running.size();) {
    if (running[i]->channel->cancelled()) {
      hand_over(*running[i]);
      finish(*running[i], FinishReason::cancelled);
      running.erase(running.begin() + ptrdiff_t(i));
      std::lock_guard lk(m);
      st.running = int64_t(running.size());
    } else {
      ++i;
    }
  }
  resolve_shares();
  for (;;) {
    std::shared_ptr<RequestState> r;
    std::optional<PrefixCache::Hit> hit;
    Share share;
    {
      std::lock_guard lk(m);
      while (!queue.empty() && queue.front()->channel->cancelled()) {
        queue.front()->channel->close_with(FinishReason::cancelled, {}, *queue.front());
        queue.pop_front();
      }
      if (queue.empty() || int(running.size()) >= o.parallel) break;
      // Admission control: the head of the queue waits (first come, first served) until the
      // running sequences leave it room. Alone, it always fits: submit() refused it otherwise.
      // The prefix cache lives in the same budget and gives way first: a cached prefix is only
      // worth its memory while no request waits for it. A hit's fork shares the entry's whole
      // KV pages (engines with pages), which the pinned entry keeps counted, so the request
      // needs room for the rest only.
      const auto& head = queue.front();
      std::tie(hit, share) = find_prefix(*head);
      const int64_t total = request_tokens(*head);
      // A running request's pages are counted by its own reservation, which ends before this one
      // may: the fork reserves its whole KV.
      int64_t need = kv_need(engine, total, hit ? hit->shared : 0);
      if (const uint64_t budget = o.kv_budget_bytes) {
        const auto cached = [&] { return cache ? cache->bytes() : uint64_t(0); };
        const auto shrink = [&] {
          if (cache && uint64_t(reserved + need) + cached() > budget)
            cache->shrink_to(budget - std::min<uint64_t>(budget, uint64_t(reserved + need)));
        };
        const auto wait = [&] {  // as if the head had not been looked at
          if (hit) cache->give_back(*hit), hit.reset();
          if (cache && !head->req.prompt_logprobs) cache->retract_lookup();
          ++st.memory_waits;
        };
        if (!running.empty() && uint64_t(reserved + need) > budget) {
          wait();
          break;
        }
        shrink();
        if (uint64_t(reserved + need) + cached() > budget) {  // pinned entries hold the room
          if (!running.empty()) {
            wait();
            break;
          }
          // Nothing runs, so only the hit pins: its entry is what does not fit. Compute instead.
          if (hit) cache->give_back(*hit), hit.reset();
          need = kv_need(engine, total, 0);
          shrink();
        }
      }
      r = queue.front();
      r->reserved_kv = need;
      queue.pop_front();
      ++st.running;  // counted while still under the lock: drain() never sees it in transit
    }
    reserved += r->reserved_kv;
    r->started = RequestState::clock::now();
    start(*r, std::move(hit), std::move(share));
    running.push_back(r);
    std::lock_guard lk(m);
    st.prompt_tokens += int64_t(r->req.prompt.size());
  }
}

void Scheduler::Impl::attach(RequestState& r, SeqId seq, int64_t fed) {
  r.seq = seq;
  r.fed = fed;
  r.cached = fed;
  if (o.kv_budget_bytes) engine.reserve(r.seq, request_tokens(r));  // no doubling past the reservation
  const int64_t kv = engine.kv_bytes();  // the new reservation allocated: a peak
  std::lock_guard lk(m);
  st.cached_tokens += fed;
  st.peak_kv_bytes = std::max(st.peak_kv_bytes, kv);
}

// Worth a wait: a shorter prefix costs little to compute, and sharing it would hold the
// request back a step. A prefix already computed is forked whatever its length (one block on).
constexpr int64_t kShareWaitTokens = 64;

std::pair<std::optional<PrefixCache::Hit>, Scheduler::Impl::Share> Scheduler::Impl::find_prefix(const RequestState& r) {
  if (!cache || r.req.prompt_logprobs) return {};  // prompt logprobs need every prompt row computed
  std::optional<PrefixCache::Hit> hit = cache->acquire(r.req.prompt);
  Share share = running_share(r.req.prompt, hit ? hit->tokens : 0);
  if (share.first && hit) cache->give_back(*hit), hit.reset();  // a running request shares more
  return {std::move(hit), std::move(share)};
}

void Scheduler::Impl::start(RequestState& r, std::optional<PrefixCache::Hit> hit, Share share) {
  if (hit) {
    r.cache_entry = hit->entry;
    attach(r, hit->seq, hit->tokens);
  } else if (share.first && share.first->fed < share.second) {
    r.share_from = std::move(share.first);  // resolve_shares() forks it once computed
    r.share_tokens = share.second;
  } else if (share.first) {
    attach(r, engine.fork_sequence(share.first->seq, share.second), share.second);
    std::lock_guard lk(m);
    ++st.running_shares;
  } else {
    attach(r, engine.create_sequence(), 0);
  }
}

Scheduler::Impl::Share Scheduler::Impl::running_share(const std::vector<int32_t>& prompt, int64_t more_than) const {
  Share best{nullptr, 0};
  const int64_t most = int64_t(prompt.size()) - 1;  // at least one token left to compute
  if (most < std::max<int64_t>(PrefixCache::kBlock, more_than + PrefixCache::kBlock)) return best;
  for (const auto& r : running) {
    if (r->done || r->seq < 0) continue;  // one that waits itself has no KV to give yet
    const int64_t same = std::min(most, common_prefix(prompt, r->req.prompt));
    const int64_t usable = r->fed >= same ? same : (same >= kShareWaitTokens ? same : 0);
    const bool computed = usable > 0 && r->fed >= usable;  // a fork now beats a wait
    if (usable > best.second || (usable == best.second && computed && best.first->fed < best.second)) best = {r, usable};
    if (best.first && best.second == most && best.first->fed >= most) break;  // none does better
  }
  if (best.second < PrefixCache::kBlock || best.second < more_than + PrefixCache::kBlock) return {nullptr, 0};
  return best;
}

void Scheduler::Impl::hand_over(const RequestState& src) {
  if (src.seq < 0 || src.fed < PrefixCache::kBlock) return;
  for (auto& r : running)
    if (r->share_from.get() == &src && !r->channel->cancelled())
      start(*r, std::nullopt, Share{std::move(r->share_from), std::min(src.fed, r->share_tokens)});
}

void Scheduler::Impl::resolve_shares() {
  for (auto& r : running) {
    if (!r->share_from) continue;
    Share src{std::move(r->share_from), r->share_tokens};
    const bool gone = src.first->done || src.first->seq < 0;
    if (!gone && src.first->fed < src.second) {  // not computed yet
      r->share_from = std::move(src.first);
      continue;
    }
    if (!gone) {
      start(*r, std::nullopt, std::move(src));
      continue;
    }
    // As if newly admitted, within the reservation made then (the whole KV). A request resolved
    // earlier in this loop may be the new source.
    auto [hit, share] = find_prefix(*r);
    start(*r, std::move(hit), std::move(share));
  }
}

bool Scheduler::Impl::step() {
  if (running.empty()) return false;
  // Decodes first (one token each), then prompt chunks in admission order with what is left.
  std::vector<BatchItem> batch;
  std::vector<RequestState*> owner;
  std::vector<int64_t> chunk_len;
  int64_t budget = o.step_tokens;
  for (auto& r : running)
    if (r->decoding()) {
      batch.push_back({r->seq, std::span<const int32_t>(&r->next, 1), false});
      owner.push_back(r.get());
      chunk_len.push_back(1);
      --budget;
    }
  // A request that others wait on ends its chunk where their shared prefix ends, so that they
  // fork at its end (a recurrent model's state exists there only; elsewhere it is recomputed
  // from a snapshot). Same bits either way: rows do not depend on the chunking.
  std::unordered_map<const RequestState*, int64_t> share_ends;
  for (auto& r : running)
    if (r->share_from && r->share_tokens > r->share_from->fed) {
      auto [it, fresh] = share_ends.try_emplace(r->share_from.get(), r->share_tokens);
      if (!fresh) it->second = std::min(it->second, r->share_tokens);
    }
  for (auto& r : running) {
    if (r->decoding() || r->seq < 0 || budget <= 0) continue;  // seq -1: waits for a shared prefix
    const int64_t left = int64_t(r->req.prompt.size()) - r->fed;
    int64_t n = std::min({left, int64_t(o.prefill_chunk), budget});
    if (const auto it = share_ends.find(r.get()); it != share_ends.end()) n = std::min(n, it->second - r->fed);
    batch.push_back({r->seq, std::span(r->req.prompt).subspan(size_t(r->fed), size_t(n)), r->req.prompt_logprobs});
    owner.push_back(r.get());
    chunk_len.push_back(n);
    budget -= n;
  }
  if (batch.empty()) return false;
  const auto expert_reads = [this] {
    std::lock_guard lk(routing->m);
    return routing->expert_reads;
  };
  const int64_t reads0 = expert_reads();
  const auto t0 = RequestState::clock::now();
  try {
    engine.forward(batch, logits);
  } catch (const std::exception& e) {
    // A failed step (out of memory, a bug) ends the requests in it, with the reason.
    for (auto* r : owner) finish(*r, FinishReason::error, fmt::format("the engine failed: {}", e.what()));
    std::erase_if(running, [](const auto& r) { return r->done; });
    std::lock_guard lk(m);
    st.running = int64_t(running.size());
    return true;
  }
  const double secs = std::chrono::duration<double>(RequestState::clock::now() - t0).count();
  const int64_t step_reads = expert_reads() - reads0;  // the observer runs inside forward()
  int64_t prefilled = 0;
  for (size_t i = 0; i < batch.size(); ++i) prefilled += owner[i]->decoding() ? 0 : chunk_len[i];
  // The requests that draw a token this step, each with its logits row. The draws (a pass or two
  // over the vocabulary each) are independent, so they share the engine's threads; what follows
  // a draw (stops, text, events) runs in item order here.
  struct Draw {
    RequestState* r;
    size_t row;
    int32_t token = 0;
    TokenLogprob logprob;
    std::string error;  // a draw that threw (on a pool thread, which must not throw) ends its request
  };
  std::vector<Draw> draws;
  const auto row_at = [&](size_t row) { return std::span<const float>(logits).subspan(row * size_t(vocab), size_t(vocab)); };
  size_t row = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    RequestState& r = *owner[i];
    const size_t rows = batch[i].all_logits ? size_t(chunk_len[i]) : 1;
    if (r.decoding()) {
      draws.push_back({&r, row, 0, {}, {}});
    } else {
      if (r.req.prompt_logprobs)
        for (size_t k = 0; k < rows && size_t(r.fed) + k + 1 < r.req.prompt.size(); ++k)
          r.add_prompt_logprob(token_logprob(row_at(row + k), r.req.prompt[size_t(r.fed) + k + 1], std::max(0, r.req.logprobs)), tok);
      r.fed += chunk_len[i];
      if (r.fed == int64_t(r.req.prompt.size())) draws.push_back({&r, row + rows - 1, 0, {}, {}});
    }
    row += rows;
  }
  engine.parallel_for(int64_t(draws.size()), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      Draw& d = draws[size_t(i)];
      try {
        d.token = d.r->sampler->sample(row_at(d.row));
        if (d.r->req.logprobs >= 0) d.logprob = token_logprob(row_at(d.row), d.token, d.r->req.logprobs);
      } catch (const std::exception& e) {
        d.error = e.what();
      }
    }
  });
  for (Draw& d : draws) {
    if (d.error.empty()) on_token(*d.r, d.token, std::move(d.logprob));
    else finish(*d.r, FinishReason::error, fmt::format("drawing the next token failed: {}", d.error));
  }
  std::erase_if(running, [](const auto& r) { return r->done; });
  const int64_t kv = engine.kv_bytes();
  std::lock_guard lk(m);
  st.running = int64_t(running.size());
  ++st.steps;
  st.busy_seconds += secs;
  st.kv_bytes = kv;
  st.peak_kv_bytes = std::max(st.peak_kv_bytes, kv);
  st.kv_reserved_bytes = reserved;
  st.prefilled_tokens += prefilled;
  if (prefilled == 0) {
    ++st.decode_steps;
    st.decode_tokens += int64_t(batch.size());
    st.decode_busy_seconds += secs;
    st.decode_expert_reads += step_reads;
  }
  st.peak_kv_reserved_bytes = std::max(st.peak_kv_reserved_bytes, reserved);
  st.peak_kv_committed_bytes =
      std::max(st.peak_kv_committed_bytes, reserved + (cache ? int64_t(cache->bytes()) : int64_t(0)));
  if (cache) {
    st.prefix_cache_bytes = int64_t(cache->bytes());
    st.prefix_cache_entries = int64_t(cache->entries());
    st.prefix_cache_hits = cache->hits();
    st.prefix_cache_lookups = cache->lookups();
    st.prefix_cache_evictions = cache->evictions();
  }
  return true;
}

void Scheduler::Impl::on_token(RequestState& r, int32_t t, TokenLogprob logprob) {
  if (r.req.logprobs >= 0) r.pending_logprobs.push_back(std::move(logprob));
  r.generated.push_back(t);
  r.next = t;
  {
    std::lock_guard lk(m);
    ++st.generated_tokens;
  }
  const bool stop_token = std::find(r.req.stop_ids.begin(), r.req.stop_ids.end(), t) != r.req.stop_ids.end();
  if (stop_token) return finish(r, FinishReason::stop);
  if (!r.pending_logprobs.empty()) r.pending_logprobs.back().text = tok.decode(std::span(&t, 1));
  r.pending_text += r.stops.push(r.decoder.push(t));
  if (r.stops.stopped()) return finish(r, FinishReason::stop);
  if (r.req.constraint && r.req.constraint->done()) return finish(r, FinishReason::stop);
  // The KV holds prompt + generated - 1 tokens; the next step feeds one more.
  const int64_t kv = int64_t(r.req.prompt.size() + r.generated.size());
  if (int64_t(r.generated.size()) >= r.req.max_tokens || kv >= context) return finish(r, FinishReason::length);
  r.emit(false);
}

void Scheduler::Impl::finish(RequestState& r, FinishReason why, const std::string& error) {
  if (r.done) return;
  if (why == FinishReason::stop || why == FinishReason::length) {
    if (!r.stops.stopped()) r.pending_text += r.stops.push(r.decoder.finish());
    r.pending_text += r.stops.finish();
  }
  r.done = true;
  r.share_from.reset();
  reserved -= r.reserved_kv;
  r.reserved_kv = 0;
  if (cache && r.cache_entry) cache->unpin(r.cache_entry), r.cache_entry = 0;
  if (r.seq >= 0) {
    // The KV holds the prompt and every generated token but the last (never fed).
    const int64_t n = engine.length(r.seq);
    if (cache && why != FinishReason::error && n == r.fed + std::max<int64_t>(0, int64_t(r.generated.size()) - 1) &&
        r.fed == int64_t(r.req.prompt.size())) {
      std::vector<int32_t> toks(r.req.prompt);
      toks.insert(toks.end(), r.generated.begin(), r.generated.end() - (r.generated.empty() ? 0 : 1));
      cache->release(r.seq, std::move(toks), o.kv_budget_bytes ? o.kv_budget_bytes - uint64_t(reserved) : UINT64_MAX);
    } else {
      engine.free_sequence(r.seq);
    }
    r.seq = -1;
  }
  r.finish_reason = why;
  r.error = error;
  r.emit(true);
}

Scheduler::Scheduler(InferenceEngine& engine, const Tokenizer& tok, SchedulerOptions o)
    : o_(o), impl_(std::make_unique<Impl>(engine, tok, o)) {}

Scheduler::~Scheduler() = default;

int64_t Scheduler::context() const { return impl_->context; }

std::shared_ptr<RequestHandle> Scheduler::submit(GenerationRequest req) {
  using K = SchedulerError::Kind;
  Impl& s = *impl_;
  if (req.prompt.empty()) throw SchedulerError(K::invalid, "the prompt is empty: there is nothing to continue");
  for (int32_t t : req.prompt)
    if (t < 0 || t >= s.vocab)
      throw SchedulerError(K::invalid, fmt::format("prompt token id {} is outside the vocabulary [0, {})", t, s.vocab));
  if (req.max_tokens < 1) throw SchedulerError(K::invalid, "max_tokens must be at least 1");
  const int64_t total = int64_t(req.prompt.size()) + req.max_tokens;
  if (total > s.context)
    throw SchedulerError(K::too_long, fmt::format("the context is {} tokens, but {} were requested ({} in the prompt, {} to generate)",
                                                  s.context, total, req.prompt.size(), req.max_tokens));
  if (const int64_t need = kv_need(s.engine, total); o_.kv_budget_bytes && uint64_t(need) > o_.kv_budget_bytes)
    throw SchedulerError(K::too_long, fmt::format("this request needs {} of KV cache ({} tokens: {} in the prompt, {} to generate), more "
                                                  "than the whole KV budget of {}; lower max_tokens or raise --kv-budget",
                                                  format_bytes(uint64_t(need)), total, req.prompt.size(), req.max_tokens,
                                                  format_bytes(o_.kv_budget_bytes)));
  std::shared_ptr<RequestState> r;
  try {
    r = std::make_shared<RequestState>(std::move(req), s.vocab, s.tok);
  } catch (const std::invalid_argument& e) {
    throw SchedulerError(K::invalid, e.what());
  }
  {
    std::lock_guard lk(s.m);
    if (s.draining || s.stop) throw SchedulerError(K::draining, "the server is shutting down and takes no new requests");
    if (int64_t(s.queue.size()) >= o_.max_queue)
      throw SchedulerError(K::queue_full, fmt::format("{} requests are already waiting; try again later", s.queue.size()));
    s.queue.push_back(r);
  }
  s.wake.notify_all();
  return r->channel;
}

void Scheduler::drain() {
  Impl& s = *impl_;
  std::unique_lock lk(s.m);
  s.draining = true;
  s.idle.wait(lk, [&] { return s.queue.empty() && s.st.running == 0; });
}

void Scheduler::run_between_steps(const std::function<void()>& f) {
  Impl& s = *impl_;
  if (std::this_thread::get_id() == s.thread.get_id()) return f();
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  {
    std::lock_guard lk(s.m);
    s.tasks.emplace_back(f, done);
  }
  s.wake.notify_all();
  fut.get();
}

SchedulerStats Scheduler::stats() const {
  Impl& s = *impl_;
  SchedulerStats out;
  {
    std::lock_guard lk(s.m);
    out = s.st;
    out.queued = int64_t(s.queue.size());
  }
  {
    std::lock_guard lk(s.routing->m);
    out.expert_tokens = s.routing->tokens;
    out.expert_reads = s.routing->expert_reads;
  }
  out.router_entropy = usage_entropy(out.expert_tokens);
  return out;
}

}  // namespace moe::serve
