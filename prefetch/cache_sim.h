// Replays a routing trace against an expert cache: the real eviction policies of the RAM
// tier (LRU, LFU), the same with prefetch of the recorded predictions, and Belady's optimal
// replacement as the bound. Answers "what hit rate and how many bytes per token would this
// cache size and policy give" without running the model. Semantics: docs/trace-sim.md.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "prefetch/trace.h"

namespace moe {

struct SimOptions {
  std::string policy = "lru";  // one of sim_policy_names()
  // Capacity: set exactly one of the three.
  int cache_per_layer = 0;   // every MoE layer has its own cache of this many experts
  double cache_frac = 0;     // per-layer caches of max(top_k, round(frac * n_experts[layer])) experts
  uint64_t cache_bytes = 0;  // one global cache of this many bytes, experts sized by header.expert_bytes
  int prefetch_k = 0;        // experts prefetched per predicted layer-step (0: top_k)
  int lookahead = 1;         // use the predictions at distances 1..lookahead
};

struct SimResult {
  uint64_t accesses = 0, hits = 0, misses = 0;                      // an access: one distinct expert of a layer-step
  uint64_t prefetches = 0, prefetch_used = 0, prefetch_wasted = 0;  // wasted: evicted before first use
  uint64_t tokens = 0;
  uint64_t miss_bytes = 0, prefetch_bytes = 0, wasted_bytes = 0;  // by header.expert_bytes (0 if unknown)
  double hit_rate() const { return accesses ? double(hits) / double(accesses) : 0.0; }
  double bytes_per_token() const { return tokens ? double(miss_bytes + prefetch_bytes) / double(tokens) : 0.0; }
  // Experts read (misses + prefetches) per token.
  double loads_per_token() const { return tokens ? double(misses + prefetches) / double(tokens) : 0.0; }
  double wasted_bytes_per_token() const { return tokens ? double(wasted_bytes) / double(tokens) : 0.0; }
  double prefetch_precision() const { return prefetches ? double(prefetch_used) / double(prefetches) : 0.0; }
};

// Throws std::invalid_argument on bad options: unknown policy, no or several capacities, a
// capacity below one layer's top_k experts, cache_bytes on a trace without expert sizes, a
// prefetch policy on a trace without predictions, lookahead beyond the trace's.
SimResult simulate(const Trace& t, const SimOptions& o);
// The tier's policies (policy_names()), each of them + "+prefetch", and "belady", in that order.
std::vector<std::string> sim_policy_names();

// True when some record carries a non-empty prediction (prefetch policies apply).
bool has_predictions(const Trace& t);

// Experts the per-layer cache of `layer` holds under `o` (cache_per_layer or cache_frac);
// 0 for a dense layer or a global byte cache.
int cache_experts(const TraceHeader& h, const SimOptions& o, int layer);

struct RecallAt {
  int lookahead;
  int k;
  double recall;     // 0 when samples == 0
  uint64_t samples;  // layer-steps with a prediction at this distance
};
// Per distance d in 1..header.lookahead and each k: the mean over layer-steps that have a
// prediction at d of |top-k predicted ∩ actual| / |actual|, actual = union of the step's
// experts over its tokens. Ordered by lookahead, then by k as given.
std::vector<RecallAt> predictor_recall(const Trace& t, std::span<const int> ks);

}  // namespace moe
