// A model opened and wired once: the composition root of the CLI, the server and batch jobs.
//
// From a path (an HF directory or a .moepack) and SessionOptions it opens the file once
// (a pack's metadata, dense weights, tokenizer and expert reads all come from one open file),
// builds the RAM tier, the engine (CPU, or CUDA with its VRAM slots) and the prefetch
// controller with the right target (the RAM tier, or the VRAM slots when they do not hold every
// expert). Callers see the engine interface, the tokenizer and one stats value; no tier or
// device pointer leaves the session.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "runtime/engine_api.h"
#include "runtime/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "session/session_options.h"
#include "session/session_stats.h"

namespace moe {

class Predictor;

// What may differ between engines of one session (moe bench compares variants): each field,
// when set, replaces the session's option for the next engine.
struct EngineVariant {
  std::optional<std::string> vram_budget;
  std::optional<std::string> prefetch_mode;  // "oracle": `predictor` predicts, the mode is reported
  std::optional<std::string> trace;
  // Runs on the new engine before the prefetch hook is installed (a routing override, a
  // statistics hook: they then see routing before the prefetcher does).
  std::function<void(InferenceEngine&)> before_prefetch;
  // Called after before_prefetch; its predictor replaces the mode's (an oracle of the routing
  // that before_prefetch forced).
  std::function<std::unique_ptr<Predictor>()> make_predictor;
  bool verbose = false;  // print the VRAM placement plan when it is planned
};

// The tokenizer of a model without opening its weights (moe tokenize): the pack's embedded
// tokenizer.json or the directory's. Throws when there is none.
Tokenizer open_tokenizer(const std::filesystem::path& model);

// The CUDA devices this build sees, or that it was built without CUDA (moe inspect).
std::string describe_cuda_devices();

class Session {
 public:
  // Opens the model and, unless o.start_engine is false, starts an engine (EngineVariant{}
  // with o.verbose). Throws
  // std::runtime_error / std::invalid_argument with a message for the user (bad file, budget,
  // a device this build or machine lacks).
  Session(const std::filesystem::path& model, SessionOptions o);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const SessionOptions& options() const { return opts_; }
  const Model& model() const { return *model_; }
  // The model's tokenizer: the pack's embedded one (read from the same open file) or the
  // directory's tokenizer.json; loaded on first use. Throws when the model has none.
  const Tokenizer& tokenizer() const;
  // Tokens that end a generation: the model's EOS ids (generation config), then the tokenizer's.
  std::vector<int32_t> stop_ids() const;
  // Throws std::logic_error before the first engine is started.
  InferenceEngine& engine();
  const InferenceEngine& engine() const;

  // Replaces the engine and its prefetch controller with fresh ones (sequences are dropped);
  // the model and its RAM tier stay, with their contents.
  void restart_engine(EngineVariant v = {});
  // The prefetch mode in force ("off", "gate", ..., or the variant's "oracle").
  const std::string& prefetch_mode() const { return mode_; }

  // A pack's RAM tier: whether there is one, evicting everything (benchmarks start cold), and
  // reading every expert once (`progress` gets the bytes of each; returns the evictions that
  // happened, > 0 when the budget could not keep them all).
  bool has_ram_tier() const;
  void clear_ram();
  uint64_t ram_expert_bytes() const;  // every expert's bytes in the RAM tier (0 without a tier)
  uint64_t warm_ram(const std::function<void(uint64_t bytes)>& progress = {});

  // What an engine step reads at least: `dense`, the weights every token uses (attention,
  // routers, shared experts, dense FFNs, LM head), once per step; `expert`, one routed expert on
  // average over the MoE layers, once per distinct (layer, expert) the step routes to; and
  // `experts_per_token`, the top_k experts of every MoE layer that one token reads.
  struct StepBytes {
    double dense = 0, expert = 0, experts_per_token = 0;
  };
  StepBytes step_bytes() const;
  // Bytes one decode token reads at least (step_bytes: dense + experts_per_token): the bandwidth
  // bound's numerator. And the non-expert bytes.
  double decode_bytes_per_token() const;
  uint64_t dense_bytes() const;

  // GPU: host -> device copies timed on the device, measured once and kept for stats(); a
  // no-op on the CPU.
  void measure_link();
  // Waits for queued prefetches, then sets every counter to zero (tier, prefetch, VRAM, step
  // times, miss paths).
  void reset_stats();
  SessionStats stats() const;
  // Writes the routing trace's buffered records (call before reading the trace file).
  void flush_trace();

 private:
  struct Parts;  // tiers, controller, device: everything callers must not see
  std::filesystem::path path_;
  SessionOptions opts_;
  std::unique_ptr<Parts> p_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<InferenceEngine> engine_;
  std::string mode_ = "off";
};

}  // namespace moe
