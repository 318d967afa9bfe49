// Wires prediction to movement: a routing hook that, at every MoE layer, tells the tier what
// this step needs (so prefetch will not evict it), cancels guesses the actual routing made
// useless, asks the predictor about the next layers and queues its guesses with the
// scheduler. It also keeps the figures (predictor recall, per-expert token counts, router
// entropy) and, optionally, writes a routing trace.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "prefetch/gate_predictor.h"
#include "prefetch/scheduler.h"
#include "prefetch/trace.h"
#include "runtime/routing.h"
#include "storage/tier/tiered_experts.h"

namespace moe {

// What the controller needs to know of the model (tools/ fills it from a Model).
struct PrefetchModelInfo {
  std::string model;                  // path, for the trace header
  std::vector<int> n_experts;         // [n_layers], 0 for dense layers
  std::vector<uint64_t> expert_bytes;  // [n_layers] one expert's bytes in the RAM tier (0: unknown)
  std::vector<LayerRouter> routers;    // [n_layers] for the gate predictor
  float rms_eps = 1e-6f;
  int top_k = 0;
};

struct PrefetchOptions {
  std::string predictor = "gate";  // off | gate | history | blend (or the given predictor's name)
  int lookahead = 2;               // MoE layers ahead
  int prefetch_k = 0;              // experts requested per predicted layer and token (0: top_k / 2, at
                                   // least 1; with an external target such as VRAM slots, top_k)
  uint64_t max_inflight_bytes = 0;  // 0: top_k of the largest experts
  float blend_alpha = 0.5f;         // blend: weight of the gate predictor
  // Guesses at a lookahead whose recent recall@k (moving average over ~32 layer-steps) is below
  // this are not sent to the disk: a predictor no better than chance (random routing) would
  // only steal bandwidth from demand reads. < 0: max(0.2, 2 * top_k / n_experts); 0: never gate.
  double min_recall = -1;
  std::filesystem::path trace;      // write a routing trace here (empty: none)
  // Once a layer's routing is known, queue its missing experts ahead of every guess (RAM tier
  // only): the engine computes the resident ones first while these stream in.
  bool stream_layer = true;
};

// Predictor recall for one lookahead distance: |top-k guess ∩ actual| / |actual|, averaged
// over the layer-steps that had a guess.
struct RecallCounter {
  int distance = 0;
  double sum_at_k = 0, sum_at_2k = 0;
  uint64_t samples = 0;
  double recent = 1.0;      // moving average of recall@k (starts optimistic)
  uint64_t gated = 0;       // layer-steps whose guesses at this distance were held back
  uint64_t predicted = 0;   // layer-steps that made a guess at this distance
  double at_k() const { return samples ? sum_at_k / double(samples) : 0.0; }
  double at_2k() const { return samples ? sum_at_2k / double(samples) : 0.0; }
};

class PrefetchController {
 public:
  // tier may be null (an HF directory: nothing to prefetch into; predictions, figures and
  // traces still work). Throws std::invalid_argument on a bad option.
  // `predictor`, when given, replaces the one o.predictor names (benchmarks: an oracle).
  // `target`, when given, is where prefetches go instead of the RAM tier (the GPU engine's VRAM
  // slots: VramPrefetchTarget); the RAM tier, if any, still protects the wanted experts.
  PrefetchController(PrefetchModelInfo info, TieredExperts* tier, PrefetchOptions o,
                     std::unique_ptr<Predictor> predictor = nullptr, PrefetchTarget* target = nullptr);
  ~PrefetchController();

  // Install with Engine::add_routing_hook; the controller must outlive the engine's use of it.
  RoutingHook hook();

  const PrefetchOptions& options() const { return opts_; }
  bool prefetching() const { return sched_ != nullptr; }
  std::vector<RecallCounter> recall() const { return recall_; }
  const std::vector<std::vector<int64_t>>& expert_tokens() const { return counts_; }  // [layer][expert]
  std::vector<double> router_entropy() const;  // [layer] nats of the expert usage; 0 for dense
  SchedulerStats scheduler_stats() const;
  double hook_seconds() const { return double(hook_ns_) / 1e9; }  // compute-thread time spent in the hook
  void drain();  // waits for queued prefetches
  void reset_stats();
  void flush_trace();

 private:
  class TierTarget;
  void on_event(const RoutingEvent& ev);  // times handle()
  void handle(const RoutingEvent& ev);
  void stream_missing(int layer);

  PrefetchModelInfo info_;
  TieredExperts* tier_;
  PrefetchOptions opts_;
  MoeLayers layers_;
  std::unique_ptr<Predictor> predictor_;
  std::unique_ptr<TierTarget> target_;
  std::unique_ptr<PrefetchScheduler> sched_;
  std::unique_ptr<TraceWriter> trace_;
  std::vector<std::vector<std::vector<int32_t>>> pending_;  // [layer][distance-1] guesses made for it
  std::vector<RecallCounter> recall_;                     // [lookahead]
  std::vector<std::vector<int64_t>> counts_;
  std::vector<LayerPrediction> preds_;
  std::vector<PrefetchRequest> reqs_;
  std::vector<int32_t> used_;
  double min_recall_ = 0;
  uint64_t hook_ns_ = 0;
  int64_t step_ = -1;
  int last_layer_ = 1 << 30;
  int streamed_layer_ = -1;  // the layer whose missing experts were queued last
};

}  // namespace moe
