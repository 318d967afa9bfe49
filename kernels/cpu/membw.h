// The machine's DRAM streaming-read bandwidth: the ceiling that memory-bound kernels and batched
// steps are judged against. On a shared machine it drifts by 2x within minutes, so benchmarks
// measure it beside their own runs instead of quoting a figure from elsewhere.
#pragma once

#include <cstddef>
#include <vector>

#include "kernels/cpu/thread_pool.h"

namespace moe::cpu {

class DramProbe {
 public:
  // Allocates and touches `bytes` (first-touch page faults stay out of the timed passes).
  explicit DramProbe(size_t bytes = size_t(1) << 30);
  // One streaming pass over the buffer, split over the pool's threads; returns seconds.
  double pass_seconds(ThreadPool& pool) const;
  // pass_seconds as GB/s (1e9 bytes).
  double read_gbs(ThreadPool& pool) const;
  size_t bytes() const { return buf_.size() * sizeof(double); }

 private:
  std::vector<double> buf_;
};

}  // namespace moe::cpu
