// The p-quantile (0..1) of a sample, nearest rank: the latency figures moe commands print.
#pragma once
#include <algorithm>
#include <vector>

namespace moe::cli {

inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size() - 1) + 0.5))];
}

}  // namespace moe::cli
