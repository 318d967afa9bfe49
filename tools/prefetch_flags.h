// Flags that choose expert prediction and prefetch (`--prefetch`, `--lookahead`,
// `--prefetch-k`, `--prefetch-inflight`, `--trace`) and the wiring of a PrefetchController
// into an engine.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "prefetch/prefetch_controller.h"
#include "runtime/engine.h"
#include "tools/storage_flags.h"

namespace moe::cli {

struct PrefetchFlags {
  std::string mode = "auto";  // auto | off | gate | history | blend
  int lookahead = 2;
  int prefetch_k = 0;
  std::string inflight;  // size; empty: top_k experts
  double min_recall = -1;  // PrefetchOptions::min_recall
  std::string trace;     // routing trace output (JSONL, docs/trace-format.md)
};

// list: --prefetch takes a comma-separated list of modes (moe bench compares them).
void add_prefetch_flags(CLI::App* cmd, PrefetchFlags& f, bool list = false);

// "auto" resolves to gate when a pack's experts do not all fit the RAM budget or a trace
// is asked for, else off.
std::string resolve_prefetch_mode(const OpenModel& m, const PrefetchFlags& f);

// A controller for `m` (null when the mode is off and no trace is written), its hook
// installed on `engine`. `mode` overrides f.mode when not empty (benchmark variants).
// `target`: where prefetches go instead of the RAM tier (the GPU's expert slots, when they do
// not hold every expert); "auto" then means gate.
std::unique_ptr<PrefetchController> attach_prefetch(OpenModel& m, const std::string& model_path, InferenceEngine& engine,
                                                    const PrefetchFlags& f, const std::string& mode = {},
                                                    std::unique_ptr<Predictor> predictor = nullptr,
                                                    PrefetchTarget* target = nullptr);

// {"prefetch": mode, "lookahead", "predictor_recall": [{"lookahead", "at_k", "at_2k", "samples"}],
//  "prefetch_precision", "prefetch_recall", "prefetch_wasted_bytes_per_token", "prefetches",
//  "prefetch_cancelled", "router_entropy": [per layer], "expert_tokens": [[per expert] per layer]}
nlohmann::json prefetch_json(const PrefetchController* c, const OpenModel& m, uint64_t tokens);
// A few lines for --stats.
std::string format_prefetch_stats(const PrefetchController* c, const OpenModel& m, uint64_t tokens);

}  // namespace moe::cli
