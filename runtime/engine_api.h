// What every engine offers its callers (generation, the CLI, later the server): sequences with
// their own KV cache, batched forward passes of (sequence, new tokens) items, routing hooks.
// Implementations: Engine (CPU, runtime/engine.h) and gpu::GpuEngine (runtime/gpu/gpu_engine.h).
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "runtime/routing.h"

namespace moe {

struct Model;

using SeqId = int32_t;

struct BatchItem {
  SeqId seq = 0;
  std::span<const int32_t> tokens;  // appended to the sequence
  bool all_logits = false;          // logits for every new token, or just the last
};

class InferenceEngine {
 public:
  virtual ~InferenceEngine() = default;

  virtual SeqId create_sequence() = 0;
  // A new sequence starting with the first n tokens of `src` (their KV is reused, not
  // recomputed: shared by whole pages where kv_page_rows() > 1, else copied).
  virtual SeqId fork_sequence(SeqId src, int64_t n) = 0;
  // Drops tokens after the first n (to rewind or reuse a shared prefix).
  virtual void truncate(SeqId seq, int64_t n) = 0;
  virtual void free_sequence(SeqId seq) = 0;
  // Room for n tokens in `seq`'s KV now, so it never grows past that (a scheduler that
  // budgets memory per sequence). A hint: engines with fixed KV ignore it.
  virtual void reserve(SeqId, int64_t) {}
  virtual int64_t length(SeqId seq) const = 0;
  virtual size_t n_sequences() const = 0;

  // Runs all items in one batched pass. Returns logits [rows, vocab], rows in item order:
  // n_tokens rows for an item with all_logits, else 1 row. Throws on bad ids or over-long
  // sequences, before any state changes.
  virtual std::vector<float> forward(std::span<const BatchItem> batch) = 0;
  // The same into `logits` (resized): a caller that keeps the vector between steps spares a
  // batched step's fresh allocation (256 rows of a 150k vocabulary: 155 MB page-faulted and
  // zeroed each step).
  virtual void forward(std::span<const BatchItem> batch, std::vector<float>& logits) { logits = forward(batch); }
  // Runs fn over chunks of [0, n) on the engine's CPU threads, when it has any (the scheduler's
  // per-request sampling between steps, while they would idle); else fn(0, n) here.
  virtual void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) { fn(0, n); }

  virtual void add_routing_hook(RoutingHook hook) = 0;
  // See routing.h: called for every MoE layer, possibly after forward(), without activations.
  virtual void add_routing_observer(RoutingHook observer) = 0;
  virtual void set_routing_override(RoutingOverride f) = 0;
  virtual const Model& model() const = 0;
  virtual int64_t kv_bytes() const = 0;
  // What one more token of one sequence adds to kv_bytes() (the attention layers' K and V rows).
  virtual int64_t kv_bytes_per_token() const = 0;
  // Rows per KV page: a sequence's KV is allocated in whole pages of this many rows, and a fork
  // shares its source's whole pages instead of copying them (writes copy a shared page first).
  // 1: no pages, a fork copies.
  virtual int64_t kv_page_rows() const { return 1; }
  // The rows a sequence of `tokens` tokens holds: whole pages.
  int64_t kv_rows(int64_t tokens) const {
    const int64_t page = std::max<int64_t>(1, kv_page_rows());
    return (tokens + page - 1) / page * page;
  }
  virtual std::string backend() const = 0;  // "cpu" or "cuda"
  virtual int threads() const { return 0; }  // CPU threads doing the compute (0: not the CPU)
};

}  // namespace moe
