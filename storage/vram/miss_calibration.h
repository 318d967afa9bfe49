// Start-up measurements for the miss cost model: the link (a few host->device copies of
// different sizes, timed by the device: seconds = latency + bytes / bandwidth) and the CPU's
// expert speed (one expert over a few token counts: seconds = fixed + tokens * per_token).
// Both end in a least-squares line through the samples; the fits are pure and tested on
// hand-made samples, the measurements through FakeDevice and a fake clock.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "storage/vram/device_api.h"

namespace moe {

struct LinearFit {
  double intercept = 0, slope = 0;  // y = intercept + slope * x
};
// Least squares through (x, y). Throws std::invalid_argument with fewer than two distinct x.
LinearFit fit_line(std::span<const double> x, std::span<const double> y);

struct LinkCalibration {
  double bytes_per_s = 0, latency_s = 0;
};
// Copies each of `sizes` `repeats` times from pinned memory into one device buffer and fits
// the device-timed durations. Allocates max(sizes) of device and pinned memory, frees them.
// Throws std::runtime_error when the fit says the link is not faster with more bytes.
LinkCalibration measure_link(DeviceMemory& mem, CopyEngine& copy, std::span<const uint64_t> sizes, int repeats = 3);

struct CpuExpertCalibration {
  double fixed_s = 0, per_token_s = 0;
};
// Runs run_expert(tokens) for each of `tokens` `repeats` times, timing each with now()
// (seconds; steady_clock in the real start-up, a fake in tests) and keeping the fastest per
// token count (the least disturbed). Negative fits are clamped to 0.
CpuExpertCalibration measure_cpu_expert(const std::function<void(int)>& run_expert, std::span<const int> tokens,
                                        const std::function<double()>& now, int repeats = 3);

}  // namespace moe
