// Shared by the GPU kernel tests: skip without a device, fresh seeds that failures print,
// random inputs, and the "fully written and close" check against a CPU reference.
#pragma once
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace moe::test {

// Empty when a device is usable, else why not.
inline std::string cuda_unavailable() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return std::string("no CUDA device: ") + cudaGetErrorString(err);
  }
  return n == 0 ? "no CUDA device: cudaGetDeviceCount found 0" : "";
}

#define SKIP_WITHOUT_GPU()                                         \
  do {                                                             \
    static const std::string why = ::moe::test::cuda_unavailable(); \
    if (!why.empty()) GTEST_SKIP() << why;                         \
  } while (0)

// MOE_TEST_SEED repeats a run; otherwise every run draws new inputs.
inline uint64_t fresh_seed() {
  if (const char* s = std::getenv("MOE_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  return (uint64_t(std::random_device{}()) << 32) | std::random_device{}();
}

inline std::vector<float> random_vec(std::mt19937_64& rng, int64_t n, float sd = 1.0f) {
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& e : v) e = nd(rng);
  return v;
}

// Every element written (not the NaN poison) and max |got - ref| / max |ref| <= tol.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& ref, double tol) {
  ASSERT_EQ(got.size(), ref.size());
  double max_ref = 0, max_err = 0;
  size_t unwritten = 0, first_unwritten = 0, worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_ref = std::max(max_ref, std::abs(double(ref[i])));
    if (std::isnan(got[i])) {
      if (unwritten++ == 0) first_unwritten = i;
      continue;
    }
    const double e = std::abs(double(got[i]) - double(ref[i]));
    if (e > max_err) max_err = e, worst = i;
  }
  ASSERT_EQ(unwritten, 0u) << unwritten << " of " << ref.size() << " outputs not written (NaN), first at " << first_unwritten;
  ASSERT_GT(max_ref, 0.0) << "degenerate reference";
  EXPECT_LE(max_err / max_ref, tol) << "worst element " << worst << ": gpu " << got[worst] << " cpu " << ref[worst]
                                    << " (max |cpu| " << max_ref << ")";
}

}  // namespace moe::test
