// A pack replaced under its path while `moe run` starts (issue: hostile files, item 1): every run
// reads one file (opened once; the readers reopen its descriptor), so every run completes. Before,
// config, dense weights and experts could come from two files: false "corrupt record" errors, and
// heap corruption. scripts/race-swap.sh is the stress loop (2,000 runs in the closing note).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>
#include <sys/wait.h>

#include "cli/moe_cli.h"

TEST(RaceSwap, EveryRunReadsOnePack) {
  const std::string script = (std::filesystem::path(MOE_SOURCE_DIR) / "scripts" / "race-swap.sh").string();
  const std::string cmd = "RACE_A=olmoe RACE_B=qwen2_moe " + script + " 100 " + moe::test::moe_binary() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int code = WEXITSTATUS(pclose(p));
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("100 runs: 100 completed, 0 clean errors, 0 aborts or signals"), std::string::npos) << out;
}
