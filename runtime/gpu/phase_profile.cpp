#include "runtime/gpu/phase_profile.h"

#include <algorithm>

#include "kernels/cuda/check.h"

namespace moe::gpu {

PhaseProfile::~PhaseProfile() {
  for (cudaEvent_t e : events_) cudaEventDestroy(e);  // no throwing from a destructor
}

void PhaseProfile::record(cudaStream_t s) {
  if (used_ == events_.size()) {
    cudaEvent_t e = nullptr;
    MOE_CUDA_CHECK(cudaEventCreate(&e));
    events_.push_back(e);
  }
  MOE_CUDA_CHECK(cudaEventRecord(events_[used_++], s));
}

void PhaseProfile::begin(cudaStream_t s) {
  used_ = 0;
  labels_.clear();
  active_ = true;
  record(s);
}

void PhaseProfile::mark(const char* phase, cudaStream_t s) {
  if (!active_) return;
  record(s);
  labels_.push_back(phase);
}

void PhaseProfile::end(std::vector<std::pair<std::string, double>>& totals) {
  if (!active_) return;
  active_ = false;
  for (size_t i = 0; i < labels_.size(); ++i) {
    float ms = 0;
    MOE_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i], events_[i + 1]));
    const auto it = std::find_if(totals.begin(), totals.end(), [&](const auto& t) { return t.first == labels_[i]; });
    if (it == totals.end()) totals.emplace_back(labels_[i], double(ms) * 1e-3);
    else it->second += double(ms) * 1e-3;
  }
}

}  // namespace moe::gpu
