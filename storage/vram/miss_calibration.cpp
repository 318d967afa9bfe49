#include "storage/vram/miss_calibration.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>

namespace moe {

LinearFit fit_line(std::span<const double> x, std::span<const double> y) {
  if (x.size() != y.size()) throw std::invalid_argument("fit_line: x and y differ in length");
  const double n = double(x.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    mx += x[i];
    my += y[i];
  }
  if (x.empty()) throw std::invalid_argument("fit_line: no samples");
  mx /= n;
  my /= n;
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
  }
  if (!(sxx > 0)) throw std::invalid_argument("fit_line: needs samples at two or more distinct sizes");
  LinearFit f;
  f.slope = sxy / sxx;
  f.intercept = my - f.slope * mx;
  return f;
}

LinkCalibration measure_link(DeviceMemory& mem, CopyEngine& copy, std::span<const uint64_t> sizes, int repeats) {
  if (sizes.empty()) throw std::invalid_argument("measure_link: no sizes");
  const uint64_t largest = *std::max_element(sizes.begin(), sizes.end());
  void* host = mem.allocate_pinned(largest);
  DeviceAddr dev = 0;
  std::vector<double> x, y;
  try {
    dev = mem.allocate(largest);
    for (int r = 0; r < std::max(repeats, 1); ++r)
      for (uint64_t n : sizes) {
        const CopyTicket t = copy.copy_to_device(dev, host, n);
        copy.wait(t);
        x.push_back(double(n));
        y.push_back(copy.elapsed_s(t));
      }
  } catch (...) {
    if (dev) mem.free(dev);
    mem.free_pinned(host);
    throw;
  }
  mem.free(dev);
  mem.free_pinned(host);
  const LinearFit f = fit_line(x, y);
  if (!(f.slope > 0))
    throw std::runtime_error(fmt::format(
        "link calibration: copies did not take longer with more bytes ({:.3g} s/byte); calibrate with larger sizes",
        f.slope));
  return {1.0 / f.slope, std::max(f.intercept, 0.0)};
}

CpuExpertCalibration measure_cpu_expert(const std::function<void(int)>& run_expert, std::span<const int> tokens,
                                        const std::function<double()>& now, int repeats) {
  std::vector<double> x, y;
  for (int n : tokens) {
    double best = std::numeric_limits<double>::infinity();
    for (int r = 0; r < std::max(repeats, 1); ++r) {
      const double t0 = now();
      run_expert(n);
      best = std::min(best, now() - t0);
    }
    x.push_back(double(n));
    y.push_back(best);
  }
  const LinearFit f = fit_line(x, y);
  return {std::max(f.intercept, 0.0), std::max(f.slope, 0.0)};
}

}  // namespace moe
