// Offloading must not change results: the same pack, prompt and seed give the same tokens
// whatever the RAM budget and I/O backend (issue: tiered expert storage, acceptance 2).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/moe_cli.h"

namespace fs = std::filesystem;

namespace {

// Output of `moe ARGS`; the exit status goes to *code.
std::string run_moe(const std::string& args, int* code, bool keep_stderr = true) {
  auto r = moe::test::moe_cli(args, keep_stderr);
  *code = r.code;
  return r.out;
}

fs::path fixtures() { return fs::path(MOE_SOURCE_DIR) / "tests" / "fixtures"; }

}  // namespace

class Offload : public ::testing::TestWithParam<std::string> {};

TEST_P(Offload, TokensIdenticalAcrossBudgetsAndReaders) {
  const fs::path pack = fs::temp_directory_path() / ("moe-offload-" + GetParam() + ".moepack");
  int code = 0;
  std::string out = run_moe("convert " + (fixtures() / GetParam()).string() + " " + pack.string() +
                                " --experts int4 --group-size 32", &code);
  ASSERT_EQ(code, 0) << out;
  const nlohmann::json cfg = nlohmann::json::parse(run_moe("inspect --json --model " + pack.string(), &code, false));
  ASSERT_EQ(code, 0);
  // 10% of the experts, unless that cannot hold one layer's top-k (tiny fixtures): then the
  // smallest budget that can, which forces the most evictions.
  const double per_layer = double(cfg["experts"].get<int>() * cfg["moe_layers"].get<int>());
  const int min_pct = int(std::ceil(100.0 * cfg["top_k"].get<int>() / per_layer));
  const std::string small = std::to_string(std::max(10, min_pct)) + "%";
  const std::string base = "run --model " + pack.string() + " --prompt 'def main(): print' -n 24 --seed 1 --temp 0.9 --no-echo";
  const std::string ref = run_moe(base + " --ram-budget 100% --io mmap", &code, false);
  ASSERT_EQ(code, 0) << ref;
  ASSERT_FALSE(ref.empty());
  for (const std::string budget : {"100%", "50%", small.c_str()})
    for (const char* io : {"uring", "mmap", "pread"}) {
      const std::string got = run_moe(base + " --ram-budget " + budget + " --io " + io, &code, false);
      EXPECT_EQ(code, 0) << got;
      EXPECT_EQ(got, ref) << "budget " << budget << ", io " << io;
    }
  // Nor do prefetch, its lookahead and the eviction policy (issue: prefetch, acceptance 1).
  for (const char* pf : {"--prefetch off", "--prefetch gate --lookahead 1", "--prefetch gate --lookahead 3",
                         "--prefetch history", "--prefetch blend --policy lfu"}) {
    const std::string got = run_moe(base + " --ram-budget " + small + " " + pf, &code, false);
    EXPECT_EQ(code, 0) << got;
    EXPECT_EQ(got, ref) << "budget " << small << ", " << pf;
  }
  fs::remove(pack);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Offload,
                         ::testing::Values("mixtral", "mixtral_fused", "olmoe", "qwen2_moe", "qwen3_moe", "qwen3_moe_fused"),
                         [](const auto& i) { return i.param; });
