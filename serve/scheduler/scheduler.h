// Continuous batching over one InferenceEngine. Requests join and leave the running batch
// between engine steps; each step decodes one token for every running sequence and prefills
// waiting prompts in chunks with what is left of the step's token budget, so long prompts never
// stall running decodes. Finished sequences go to the prefix cache; a new request forks the
// longest cached prefix of its prompt instead of recomputing it, or, when a running request's
// prompt shares a longer one, forks that request's KV (waiting, without a sequence, until it has
// been computed): requests that arrive together with one system prompt or few-shot preamble
// compute it once. Both are prefix reuse (off with prefix_cache_bytes 0). The engine runs on the
// scheduler's own thread: callers submit requests and read events from their handle.
// A request gives the same tokens alone as among others: its sampler and seed are its own and
// the engine's rows do not depend on the batch.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/engine_api.h"
#include "runtime/tokenizer/tokenizer.h"
#include "serve/scheduler/request.h"

namespace moe::serve {

struct SchedulerOptions {
  int64_t context = 0;           // tokens per sequence, prompt + generated (0: the model's maximum)
  int parallel = 8;              // sequences running at once; more wait in the queue
  int max_queue = 256;           // waiting requests beyond this are refused
  int prefill_chunk = 512;       // prompt tokens per sequence per step
  int64_t step_tokens = 2048;    // tokens per engine step, decodes and prefill chunks together
  uint64_t prefix_cache_bytes = 0;  // KV the prefix cache may keep (0: no prefix reuse)
  // Admission control: running sequences reserve KV (and recurrent state) for prompt +
  // max_tokens, and a request waits while its reservation would take the total over this
  // (0: no limit). The prefix cache lives within it too (besides its own bound above): it evicts
  // entries before a request waits, and keeps a finished sequence only in what is left.
  uint64_t kv_budget_bytes = 0;
};

class SchedulerError : public std::runtime_error {
 public:
  enum class Kind { queue_full, too_long, draining, invalid };
  SchedulerError(Kind k, const std::string& msg) : std::runtime_error(msg), kind(k) {}
  Kind kind;
};

// The caller's end of one request.
class RequestHandle {
 public:
  virtual ~RequestHandle() = default;
  // The next event, waiting at most `timeout`; nullopt on timeout. After the last event
  // (finish != none) it returns nullopt at once.
  virtual std::optional<GenerationEvent> next(std::chrono::milliseconds timeout) = 0;
  // Stops generating and frees the sequence at the next step (a client went away).
  virtual void cancel() = 0;
};

struct SchedulerStats {
  int64_t queued = 0, running = 0;             // requests
  int64_t steps = 0;                           // engine steps run
  int64_t prompt_tokens = 0, cached_tokens = 0, generated_tokens = 0;  // totals
  int64_t prefilled_tokens = 0;  // prompt tokens through the engine so far (prompt_tokens counts at admission)
  int64_t kv_bytes = 0;                        // the engine's KV, running and cached sequences
  int64_t peak_kv_bytes = 0;                   // its peak, after each admission and step
  int64_t kv_reserved_bytes = 0;               // what the running sequences reserved (admission)
  int64_t peak_kv_reserved_bytes = 0;
  int64_t peak_kv_committed_bytes = 0;         // reserved + the prefix cache's, after each step
  int64_t memory_waits = 0;                    // steps a request waited for KV room
  int64_t prefix_cache_bytes = 0, prefix_cache_entries = 0;
  int64_t prefix_cache_hits = 0, prefix_cache_lookups = 0, prefix_cache_evictions = 0;
  int64_t running_shares = 0;  // requests that forked a running request's prompt (not the cache)
  double busy_seconds = 0;                     // time inside engine steps
  std::vector<std::vector<int64_t>> expert_tokens;  // [layer][expert] tokens routed
  // Experts a batched step needs, summed over steps: each (layer, expert) once per step however
  // many of the step's tokens chose it. Bytes read = steps x dense bytes + this x expert size.
  int64_t expert_reads = 0;
  // The same over the steps without prompt tokens (batched decode alone, whose bound is the
  // bytes it reads; a prefill step is bound by compute).
  int64_t decode_steps = 0, decode_tokens = 0, decode_expert_reads = 0;
  double decode_busy_seconds = 0;
  std::vector<double> router_entropy;          // per layer, nats (routing.h usage_entropy)
};

class Scheduler {
 public:
  // The engine and tokenizer must outlive the scheduler. Starts the scheduler thread.
  Scheduler(InferenceEngine& engine, const Tokenizer& tok, SchedulerOptions o);
  ~Scheduler();  // cancels what runs and joins the thread
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Throws SchedulerError: queue_full, too_long (prompt + max_tokens over the context, or its
  // KV over kv_budget_bytes; the message gives the numbers), draining (after drain()), invalid (empty prompt, bad ids,
  // bad sampling values).
  std::shared_ptr<RequestHandle> submit(GenerationRequest r);
  // Refuses new requests and waits until every accepted one has finished.
  void drain();
  SchedulerStats stats() const;
  // Runs f on the scheduler thread between two steps and waits for it (to read engine or
  // session state that the step loop also touches).
  void run_between_steps(const std::function<void()>& f);
  const SchedulerOptions& options() const { return o_; }
  int64_t context() const;  // the resolved context length

 private:
  struct Impl;
  SchedulerOptions o_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe::serve
