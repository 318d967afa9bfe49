// The miss cost model on hand-computed cases, and the start-up calibration through FakeDevice
// and a fake clock.
#include <gtest/gtest.h>

#include <vector>

#include "storage/vram/fake_device.h"
#include "storage/vram/miss_calibration.h"
#include "storage/vram/miss_cost.h"

namespace moe {
namespace {

// A 100 MB expert (a Mixtral-sized INT4 expert, roughly) on a PCIe 3 x8 link (8 GB/s, 10 us
// per copy). CPU: 2 ms to stream the weights from RAM once (50 GB/s), 0.5 ms per token.
// Activations: hidden 4096 in fp32 = 16384 bytes per token each way.
MissCalibration pcie3() {
  MissCalibration c;
  c.link_bytes_per_s = 8e9;
  c.link_latency_s = 10e-6;
  c.cpu_fixed_s = 2e-3;
  c.cpu_per_token_s = 0.5e-3;
  c.activation_bytes = 16384;
  return c;
}
constexpr uint64_t kExpertBytes = 100'000'000;

TEST(MissCost, OneTokenThroughAColdExpertOnASlowLinkRunsOnTheCpu) {
  const MissDecision d = decide_miss(pcie3(), {kExpertBytes, false, 1});
  // wait: 10 us + 1e8 / 8e9 = 12.51 ms; cpu: 2 x (10 us + 16384 / 8e9) + 2 ms + 0.5 ms = 2.524096 ms
  EXPECT_NEAR(d.wait_s, 12.51e-3, 1e-12);
  EXPECT_NEAR(d.cpu_s, 2.524096e-3, 1e-12);
  EXPECT_EQ(d.path, MissPath::ComputeOnCpu);
}

TEST(MissCost, ACopyNinetyPercentDoneIsWaitedFor) {
  // 1e7 bytes left, no new copy latency: 1.25 ms < 2.524 ms on the CPU.
  const MissDecision d = decide_miss(pcie3(), {kExpertBytes / 10, true, 1});
  EXPECT_NEAR(d.wait_s, 1.25e-3, 1e-12);
  EXPECT_EQ(d.path, MissPath::WaitForCopy);
}

TEST(MissCost, ManyTokensGoToTheGpu) {
  // cpu: 2 x (10 us + 64 x 16384 / 8e9) + 2 ms + 32 ms = 34.282144 ms > 12.51 ms
  const MissDecision d = decide_miss(pcie3(), {kExpertBytes, false, 64});
  EXPECT_NEAR(d.cpu_s, 34.282144e-3, 1e-12);
  EXPECT_EQ(d.path, MissPath::WaitForCopy);
}

TEST(MissCost, TheCrossoverIsWhereTheCostsMeet) {
  // cpu(n) = 20 us + 2 ms + n x (0.5 ms + 4.096 us); equal to 12.51 ms at n = 20.8.
  EXPECT_EQ(decide_miss(pcie3(), {kExpertBytes, false, 20}).path, MissPath::ComputeOnCpu);
  EXPECT_EQ(decide_miss(pcie3(), {kExpertBytes, false, 21}).path, MissPath::WaitForCopy);
  // A fast link (PCIe 5 x16, 50 GB/s: 2.01 ms) makes even one token wait.
  MissCalibration fast = pcie3();
  fast.link_bytes_per_s = 50e9;
  EXPECT_EQ(decide_miss(fast, {kExpertBytes, false, 1}).path, MissPath::WaitForCopy);
}

TEST(MissCost, BadInputsAreRefused) {
  MissCalibration c = pcie3();
  EXPECT_THROW(decide_miss(c, {kExpertBytes, false, 0}), std::invalid_argument);
  c.link_bytes_per_s = 0;
  EXPECT_THROW(decide_miss(c, {kExpertBytes, false, 1}), std::invalid_argument);
}

TEST(MissCost, CountsEachPathAndItsTokens) {
  MissPathCounts n;
  for (int t : {1, 1, 2}) n.add(decide_miss(pcie3(), {kExpertBytes, false, t}), t);
  n.add(decide_miss(pcie3(), {kExpertBytes, false, 64}), 64);
  EXPECT_EQ(n.on_cpu, 3u);
  EXPECT_EQ(n.tokens_on_cpu, 4u);
  EXPECT_EQ(n.waited, 1u);
  EXPECT_EQ(n.tokens_waited, 64u);
  EXPECT_EQ(format_miss_counts(n), "misses: 1 waited for the copy (64 tokens), 3 on the CPU (4 tokens, 75%)");
}

TEST(MissCalibration, FitLineRecoversAnExactLine) {
  const std::vector<double> x = {1, 2, 4, 8}, y = {5, 7, 11, 19};  // 3 + 2x
  const LinearFit f = fit_line(x, y);
  EXPECT_NEAR(f.intercept, 3.0, 1e-12);
  EXPECT_NEAR(f.slope, 2.0, 1e-12);
  const std::vector<double> same = {4, 4}, ys = {1, 2};
  EXPECT_THROW(fit_line(same, ys), std::invalid_argument);
}

TEST(MissCalibration, LinkIsMeasuredFromDeviceTimedCopies) {
  FakeDevice d({1 << 26, 12e9, 7e-6});
  const std::vector<uint64_t> sizes = {1 << 16, 1 << 20, 1 << 24};
  const LinkCalibration c = measure_link(d, d, sizes, 2);
  EXPECT_NEAR(c.bytes_per_s, 12e9, 12e9 * 1e-9);
  EXPECT_NEAR(c.latency_s, 7e-6, 1e-12);
  EXPECT_EQ(d.copies().size(), 6u);
  EXPECT_EQ(d.allocated_bytes(), 0u);
  EXPECT_EQ(d.pinned_bytes(), 0u);
}

TEST(MissCalibration, CpuExpertSpeedKeepsTheFastestRunPerTokenCount) {
  double clock = 0;
  int calls = 0;
  // 2 ms + 0.1 ms per token, and every first run of a count is 5 ms late (a cold cache).
  auto run = [&](int n) { clock += 2e-3 + n * 1e-4 + (calls++ % 3 == 0 ? 5e-3 : 0.0); };
  const std::vector<int> tokens = {1, 4, 16};
  const CpuExpertCalibration c = measure_cpu_expert(run, tokens, [&] { return clock; }, 3);
  EXPECT_EQ(calls, 9);
  EXPECT_NEAR(c.fixed_s, 2e-3, 1e-12);
  EXPECT_NEAR(c.per_token_s, 1e-4, 1e-12);
}

}  // namespace
}  // namespace moe
