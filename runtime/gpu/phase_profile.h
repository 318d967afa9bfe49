// Where a GPU decode step's time goes, phase by phase (`moe bench --gpu-phases`): CUDA events
// recorded between the step's launches, read once after its sync. Only eager steps can be
// profiled (a captured graph would replay its capture's events), so the engine launches every
// kernel while this is on: the figures include the launch gaps that graphs remove, and a run's
// tokens/s with the profile on is not its speed.
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <utility>
#include <vector>

namespace moe::gpu {

class PhaseProfile {
 public:
  PhaseProfile() = default;
  ~PhaseProfile();
  PhaseProfile(const PhaseProfile&) = delete;
  PhaseProfile& operator=(const PhaseProfile&) = delete;

  void begin(cudaStream_t s);                    // the step's first event; marks count from it
  void mark(const char* phase, cudaStream_t s);  // the time since the previous event was `phase`
  // After the step's sync: adds each interval (seconds) to its phase's total, phases in the
  // order first seen; ends the step.
  void end(std::vector<std::pair<std::string, double>>& totals);
  void cancel() { active_ = false; }  // marks do nothing until the next begin
  bool active() const { return active_; }

 private:
  void record(cudaStream_t s);

  std::vector<cudaEvent_t> events_;  // reused from step to step
  std::vector<const char*> labels_;  // labels_[i]: the interval that ends at event i + 1
  size_t used_ = 0;
  bool active_ = false;
};

}  // namespace moe::gpu
