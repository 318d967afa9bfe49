// For an expert the current step needs but the GPU does not hold (or still copies): wait for
// its weights to cross the link, or ship its tokens' activations to the CPU, compute the
// expert there from the RAM tier's copy, and ship the results back. One token through a cold
// expert on a slow link: the CPU wins (it streams the weights from RAM once, faster than the
// link moves them). Many tokens, or a copy nearly done: the GPU wins.
//
// The calibration comes from start-up measurements (miss_calibration.h); decide_miss is pure.
#pragma once
#include <cstdint>
#include <string>

namespace moe {

struct MissCalibration {
  double link_bytes_per_s = 0;   // host->device, pinned memory (measured)
  double link_latency_s = 0;     // per copy (measured)
  // The CPU running one expert over n tokens: cpu_fixed_s + n * cpu_per_token_s (measured on
  // this model's expert shape; the fixed part is mostly streaming the weights from RAM once).
  double cpu_fixed_s = 0;
  double cpu_per_token_s = 0;
  double gpu_per_token_s = 0;     // the expert on the GPU once its weights are there (0: ignore)
  uint64_t activation_bytes = 0;  // per token, each way (hidden x 4 for fp32)
};

struct MissQuery {
  uint64_t pending_bytes = 0;  // bytes the link must still move before the expert is there
                               // (VramTier::pending_copy_bytes)
  bool copy_started = false;   // its copy is on the engine already: no new copy latency
  int tokens = 1;              // tokens routed to the expert this step
};

enum class MissPath : uint8_t { WaitForCopy, ComputeOnCpu };

struct MissDecision {
  MissPath path = MissPath::WaitForCopy;
  double wait_s = 0;  // estimated: the copy's remaining time + the GPU's compute
  double cpu_s = 0;   // estimated: activations both ways + the CPU's compute
};

// Ties go to the GPU (the copy also leaves the expert resident for the next step).
// Throws std::invalid_argument for a calibration with a non-positive link bandwidth or
// negative times, or tokens < 1.
MissDecision decide_miss(const MissCalibration& c, const MissQuery& q);

// How often each path was taken, and for how many tokens.
struct MissPathCounts {
  uint64_t waited = 0, on_cpu = 0;
  uint64_t tokens_waited = 0, tokens_on_cpu = 0;
  void add(const MissDecision& d, int tokens);
  double cpu_share() const { return waited + on_cpu ? double(on_cpu) / double(waited + on_cpu) : 0.0; }
};
// "misses: 12 waited for the copy (40 tokens), 30 on the CPU (31 tokens, 71%)"
std::string format_miss_counts(const MissPathCounts& c);

}  // namespace moe
