// split_misses against a VramTier on FakeDevice: resident experts stay on the GPU, a cold miss
// with one token goes to the CPU on a slow link, a miss with many tokens waits for its copy;
// only misses are counted, and asking copies nothing.
#include <gtest/gtest.h>

#include <vector>

#include "storage/vram/fake_device.h"
#include "storage/vram/miss_split.h"
#include "storage/vram/vram_tier.h"
#include "vram/fake_host.h"

namespace moe {
namespace {

constexpr uint64_t kExpert = 1024;

// A 1000 B/s link: a 1024-byte expert takes 1.024 s to copy. CPU: 0.1 s + 0.2 s per token;
// activations 10 bytes a token each way (0.01 s). One token: CPU 0.32 s < 1.024 s. Four
// tokens: CPU 0.98 s (0.9 + 0.08) vs 1.024 s: CPU. Five: 1.2 s: wait.
MissCalibration calib() {
  MissCalibration c;
  c.link_bytes_per_s = 1000.0;
  c.cpu_fixed_s = 0.1;
  c.cpu_per_token_s = 0.2;
  c.activation_bytes = 10;
  return c;
}

VramOptions four_slots() {
  VramOptions o;
  o.budget_bytes = 4 * kExpert;
  o.top_k = 2;
  return o;
}

TEST(MissSplit, ResidentOnGpuColdSingleTokenOnCpuBusyExpertWaits) {
  FakeDevice d({1 << 24, 1000.0, 0.0});
  FakeHost h(1, 8, kExpert);
  VramTier t(h, d, d, four_slots());
  const VramExpert x = t.acquire(0, 3);  // expert 3 resident once its copy is done
  t.wait(x);
  t.release(0, 3);
  ASSERT_TRUE(t.resident({0, 3}));
  const uint64_t copied = t.stats().bytes_copied;

  MissPathCounts counts;
  const std::vector<RoutedExpert> routed = {{3, 1}, {5, 1}, {6, 5}, {7, 4}};
  const MissSplit s = split_misses(t, 0, routed, calib(), counts);
  EXPECT_EQ(s.gpu, (std::vector<int>{3, 6}));
  EXPECT_EQ(s.cpu, (std::vector<int>{5, 7}));
  EXPECT_EQ(counts.waited, 1u);  // the resident expert is not a miss
  EXPECT_EQ(counts.on_cpu, 2u);
  EXPECT_EQ(counts.tokens_on_cpu, 5u);
  EXPECT_EQ(counts.tokens_waited, 5u);
  EXPECT_EQ(t.stats().bytes_copied, copied) << "asking started a copy";
}

TEST(MissSplit, TokensDecideForACopyInFlight) {
  FakeDevice d({1 << 24, 1000.0, 0.0});
  FakeHost h(1, 8, kExpert);
  VramTier t(h, d, d, four_slots());
  const VramExpert x = t.acquire(0, 2);  // copying: 1.024 s on the link
  d.advance(0.9);                        // 0.124 s left (the tier reports its whole size: an upper bound)
  MissPathCounts counts;
  // With the whole 1024 bytes still counted the copy costs 1.024 s (no new latency): one token
  // on the CPU (0.32 s) still wins; with 8 tokens the CPU needs 1.86 s: wait.
  const std::vector<RoutedExpert> one = {{2, 1}}, many = {{2, 8}};
  EXPECT_EQ(split_misses(t, 0, one, calib(), counts).cpu, (std::vector<int>{2}));
  EXPECT_EQ(split_misses(t, 0, many, calib(), counts).gpu, (std::vector<int>{2}));
  t.wait(x);
  t.release(0, 2);
  EXPECT_EQ(counts.on_cpu, 1u);
  EXPECT_EQ(counts.waited, 1u);
}

TEST(MissSplit, BadCalibrationIsRefused) {
  FakeDevice d({1 << 24, 1000.0, 0.0});
  FakeHost h(1, 8, kExpert);
  VramTier t(h, d, d, four_slots());
  MissPathCounts counts;
  const std::vector<RoutedExpert> routed = {{1, 1}};
  EXPECT_THROW(split_misses(t, 0, routed, MissCalibration{}, counts), std::invalid_argument);
}

}  // namespace
}  // namespace moe
