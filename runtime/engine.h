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
#include "runtime/mla_absorb.h"
#include "runtime/model.h"
#include "runtime/routing.h"
#include "runtime/scratch.h"
#include "runtime/sequence_table.h"

namespace moe {

struct EngineOptions {
  int threads = 0;          // 0: physical cores
  int64_t max_seq_len = 0;  // 0: the model's max_position_embeddings
  // Gated DeltaNet models: a sequence keeps its recurrent state every this many tokens, so a
  // fork or truncate recomputes at most this many (0: never; then from the start).
  int64_t state_snapshot_every = 256;
  // How K and V rows are kept (KvCache): F32, or BF16, F16, F8E4M3 for 2x/2x/4x less memory,
  // rounded as they are stored and widened for attention.
  DType kv_dtype = DType::F32;
};

// Seconds forward() spent per kind of block since the last reset (what `moe bench` reports as
// shares: how much of a step is gated DeltaNet, attention, FFN).
struct LayerTimes {
  double attention = 0, linear = 0, ffn = 0;
  double moe = 0;  // the part of ffn spent in MoE blocks (router, expert reads and products)
};

class Engine final : public InferenceEngine {
 public:
  Engine(const Model& model, EngineOptions opts = {});

  // The calls of InferenceEngine (runtime/engine_api.h).
  SeqId create_sequence() override;
  SeqId fork_sequence(SeqId src, int64_t n) override;
  void truncate(SeqId seq, int64_t n) override;
  void free_sequence(SeqId seq) override;
  void reserve(SeqId seq, int64_t n) override;
  int64_t kv_bytes_per_token() const override {
    return model_.cfg.kv_bytes_per_token() / int64_t(sizeof(float)) * dtype_size(opts_.kv_dtype);
  }
  int64_t kv_page_rows() const override { return KvCache::kPageRows; }
  int64_t length(SeqId seq) const override;
  size_t n_sequences() const override { return seqs_.size(); }

  std::vector<float> forward(std::span<const BatchItem> batch) override;
  void forward(std::span<const BatchItem> batch, std::vector<float>& logits) override;
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) override {
    pool_.parallel_for(n, 1, fn);
  }

  void add_routing_hook(RoutingHook hook) override { hooks_.push_back(std::move(hook)); }
  void add_routing_observer(RoutingHook observer) override { hooks_.push_back(std::move(observer)); }  // at once
  void set_routing_override(RoutingOverride f) override { override_ = std::move(f); }
  const Model& model() const override { return model_; }
  std::string backend() const override { return "cpu"; }
  int threads() const override { return pool_.size(); }
  int64_t kv_bytes() const override;
  LayerTimes layer_times() const { return times_; }
  void reset_layer_times() { times_ = {}; }

 private:
  struct Tok {
    KvCache* kv;
    int32_t seq;
    int32_t pos;
  };
  void attention(int layer, const std::vector<Tok>& toks, std::vector<float>& x);
  void mla_attention(int layer, const std::vector<Tok>& toks, std::vector<float>& x);
  void linear_attention(int layer, const std::vector<Tok>& toks, std::vector<float>& x);
  // cos/sin of each rotary pair at position pos, times YaRN's attention factor.
  void rope_tables(int32_t pos, float* cs, float* sn) const;
  // A norm weight as the engine applies it: (1 + w) for Qwen3-Next's centred norms, else w.
  WeightView norm(const WeightView& w) const;
  // out[t] = rmsnorm(x[t]) * norm(w) for T rows of width n; a prompt's rows split over the pool.
  void norm_rows(const float* x, const WeightView& w, int64_t T, int64_t n, float* out);
  // Recurrent models: bring `seq`'s state to length n (<= its length) from the nearest snapshot,
  // recomputing the tokens after it.
  void rewind(SeqId seq, int64_t n);
  // x: [T, H] residual stream after attention; h: [T, H] its FFN-normed form; out: [T, H].
  void ffn(int layer, const std::vector<Tok>& toks, const std::vector<float>& x, const std::vector<float>& h,
           std::vector<float>& out);
  void moe(int layer, const std::vector<Tok>& toks, const std::vector<float>& x, const std::vector<float>& h,
           std::vector<float>& out);
  void dense_ffn(const FfnWeights& w, int64_t n, int64_t inter, const float* h, float* out);

  const Model& model_;
  EngineOptions opts_;
  ThreadPool pool_;
  std::vector<float> inv_freq_;  // [rotary_dim / 2]
  // MLA in absorbed form, from each layer's kv_b_proj (mla_absorb.h).
  std::vector<MlaAbsorbed> mla_;
  // moe()'s expert outputs [T * top_k, hidden], kept between layers and steps: a fresh buffer of
  // a prefill step's size would be page-faulted and zeroed at every layer.
  std::vector<float> moe_ys_;
  std::vector<std::vector<float>> moe_xin_;  // moe()'s gathered rows per chunk slot, likewise
  // forward()'s residual stream, normed rows and FFN output [T, hidden], and the per-layer
  // blocks' temporaries (scratch.h), likewise kept.
  std::vector<float> step_x_, step_h_, step_f_;
  Scratch scratch_;
  std::map<const void*, std::vector<float>> offset_norms_;  // norm_plus_one: w's data -> 1 + w
  // Every sequence's KV pages: a fork and the sequence it came from share theirs (kv_cache.h).
  std::shared_ptr<KvPagePool> kv_pages_ = std::make_shared<KvPagePool>();
  SequenceTable<KvCache> seqs_;
  std::vector<RoutingHook> hooks_;
  RoutingOverride override_;
  LayerTimes times_;
};

}  // namespace moe
