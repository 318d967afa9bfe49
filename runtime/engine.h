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
#include "runtime/engine_api.h"
#include "runtime/kv_cache.h"
#include "runtime/model.h"
#include "runtime/routing.h"
#include "runtime/sequence_table.h"

namespace moe {

struct EngineOptions {
  int threads = 0;          // 0: physical cores
  int64_t max_seq_len = 0;  // 0: the model's max_position_embeddings
};

class Engine final : public InferenceEngine {
 public:
  Engine(const Model& model, EngineOptions opts = {});

  // The calls of InferenceEngine (runtime/engine_api.h).
  SeqId create_sequence() override;
  SeqId fork_sequence(SeqId src, int64_t n) override;
  void truncate(SeqId seq, int64_t n) override;
  void free_sequence(SeqId seq) override;
  int64_t length(SeqId seq) const override;
  size_t n_sequences() const override { return seqs_.size(); }

  std::vector<float> forward(std::span<const BatchItem> batch) override;

  void add_routing_hook(RoutingHook hook) override { hooks_.push_back(std::move(hook)); }
  void add_routing_observer(RoutingHook observer) override { hooks_.push_back(std::move(observer)); }  // at once
  void set_routing_override(RoutingOverride f) override { override_ = std::move(f); }
  const Model& model() const override { return model_; }
  std::string backend() const override { return "cpu"; }
  int threads() const override { return pool_.size(); }
  int64_t kv_bytes() const override;

 private:
  struct Tok {
    KvCache* kv;
    int32_t seq;
    int32_t pos;
  };
  void attention(int layer, const std::vector<Tok>& toks, std::vector<float>& x);
  void mla_attention(int layer, const std::vector<Tok>& toks, std::vector<float>& x);
  // x: [T, H] residual stream after attention; h: [T, H] its FFN-normed form; out: [T, H].
  void ffn(int layer, const std::vector<Tok>& toks, const std::vector<float>& x, const std::vector<float>& h,
           std::vector<float>& out);
  void moe(int layer, const std::vector<Tok>& toks, const std::vector<float>& x, const std::vector<float>& h,
           std::vector<float>& out);
  void dense_ffn(const FfnWeights& w, int64_t n, int64_t inter, const float* h, float* out);
  void biased_expert(const LayerWeights& L, int e, const ExpertWeights& w, int64_t n, const float* x, float* out);

  const Model& model_;
  EngineOptions opts_;
  ThreadPool pool_;
  std::vector<float> inv_freq_;  // [rotary_dim / 2]
  // MLA: each layer's kv_b_proj widened to fp32 once, read per (token, head) in absorbed form.
  std::vector<std::vector<float>> mla_kvb_;
  SequenceTable<KvCache> seqs_;
  std::vector<RoutingHook> hooks_;
  RoutingOverride override_;
};

}  // namespace moe
