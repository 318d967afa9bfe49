// Where the GPU engine's host thread spends a step (no CUDA here: tools report it without
// including the engine).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moe::gpu {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Host seconds, summed since construction or the last reset.
struct GpuStepTimes {
  double sync_s = 0;     // waiting for the device at each MoE layer's router read-back
  double acquire_s = 0;  // acquiring experts: a miss stages its bytes (host copies) before its copy
  double forward_s = 0;  // whole forward() calls
  uint64_t forwards = 0;
  uint64_t graph_steps = 0;     // forward() calls replayed from a captured CUDA graph
  uint64_t graph_segments = 0;  // layer segments (attention and routing) replayed so, in other steps
  // GpuEngineOptions::phase_profile: device seconds per phase over the profiled decode steps
  // (phases in the order a step meets them), and how many steps that was.
  std::vector<std::pair<std::string, double>> phase_s;
  uint64_t phase_steps = 0;
};

}  // namespace moe::gpu
