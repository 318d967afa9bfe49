#include "storage/vram/miss_cost.h"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace moe {

MissDecision decide_miss(const MissCalibration& c, const MissQuery& q) {
  if (!(c.link_bytes_per_s > 0) || !(c.link_latency_s >= 0) || !(c.cpu_fixed_s >= 0) || !(c.cpu_per_token_s >= 0) ||
      !(c.gpu_per_token_s >= 0))
    throw std::invalid_argument(
        "miss cost: the calibration needs a link bandwidth above zero and no negative times; run the start-up "
        "calibration first");
  if (q.tokens < 1) throw std::invalid_argument("miss cost: an expert with no tokens is not a miss");
  const double n = double(q.tokens);
  MissDecision d;
  d.wait_s = (q.copy_started ? 0.0 : c.link_latency_s) + double(q.pending_bytes) / c.link_bytes_per_s +
             n * c.gpu_per_token_s;
  // Activations go to the host and results come back: two transfers, each with its latency.
  const double ship = 2.0 * (c.link_latency_s + n * double(c.activation_bytes) / c.link_bytes_per_s);
  d.cpu_s = ship + c.cpu_fixed_s + n * c.cpu_per_token_s;
  d.path = d.cpu_s < d.wait_s ? MissPath::ComputeOnCpu : MissPath::WaitForCopy;
  return d;
}

void MissPathCounts::add(const MissDecision& d, int tokens) {
  if (d.path == MissPath::ComputeOnCpu) {
    ++on_cpu;
    tokens_on_cpu += uint64_t(tokens);
  } else {
    ++waited;
    tokens_waited += uint64_t(tokens);
  }
}

std::string format_miss_counts(const MissPathCounts& c) {
  return fmt::format("misses: {} waited for the copy ({} tokens), {} on the CPU ({} tokens, {:.0f}%)", c.waited,
                     c.tokens_waited, c.on_cpu, c.tokens_on_cpu, 100.0 * c.cpu_share());
}

}  // namespace moe
