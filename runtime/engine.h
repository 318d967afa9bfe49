// The inference engine: many sequences, each with its own KV cache, advanced together
// in batched forward passes. Prefill and decode are the same call: a batch is a list of
// (sequence, new tokens) and every token of every item goes through each layer at once,
// so a loaded expert serves all tokens routed to it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "kernels/cpu/thread_pool.h"
#include "runtime/kv_cache.h"
#include "runtime/model.h"
#include "runtime/routing.h"

namespace moe {

using SeqId = int32_t;

struct EngineOptions {
  int threads = 0;          // 0: physical cores
  int64_t max_seq_len = 0;  // 0: the model's max_position_embeddings
};

struct BatchItem {
  SeqId seq = 0;
  std::span<const int32_t> tokens;  // appended to the sequence
  bool all_logits = false;          // logits for every new token, or just the last
};

class Engine {
 public:
  Engine(const Model& model, EngineOptions opts = {});

  SeqId create_sequence();
  // A new sequence starting with the first n tokens of `src` (their KV is copied, not recomputed).
  SeqId fork_sequence(SeqId src, int64_t n);
  // Drops tokens after the first n (to rewind or reuse a shared prefix).
  void truncate(SeqId seq, int64_t n);
  void free_sequence(SeqId seq);
  int64_t length(SeqId seq) const;
  size_t n_sequences() const { return seqs_.size(); }

  // Runs all items in one batched pass. Returns logits [rows, vocab], rows in item order:
  // n_tokens rows for an item with all_logits, else 1 row. Throws on bad ids or over-long
  // sequences, before any state changes.
  std::vector<float> forward(std::span<const BatchItem> batch);

  void add_routing_hook(RoutingHook hook) { hooks_.push_back(std::move(hook)); }
  void set_routing_override(RoutingOverride f) { override_ = std::move(f); }
  const Model& model() const { return model_; }
  int threads() const { return pool_.size(); }
  int64_t kv_bytes() const;

 private:
  struct Tok {
    KvCache* kv;
    int32_t seq;
    int32_t pos;
  };
  void attention(int layer, const std::vector<Tok>& toks, std::vector<float>& x);
  // x: [T, H] residual stream after attention; h: [T, H] its FFN-normed form; out: [T, H].
  void ffn(int layer, const std::vector<Tok>& toks, const std::vector<float>& x, const std::vector<float>& h,
           std::vector<float>& out);
  void moe(int layer, const std::vector<Tok>& toks, const std::vector<float>& x, const std::vector<float>& h,
           std::vector<float>& out);
  void dense_ffn(const FfnWeights& w, int64_t n, int64_t inter, const float* h, float* out);

  const Model& model_;
  EngineOptions opts_;
  ThreadPool pool_;
  std::vector<float> inv_freq_;  // [head_dim / 2]
  std::map<SeqId, std::unique_ptr<KvCache>> seqs_;
  SeqId next_id_ = 0;
  std::vector<RoutingHook> hooks_;
  RoutingOverride override_;
};

}  // namespace moe
