// `--ram-budget` parsing and the check that a budget holds one step's experts.
#include <gtest/gtest.h>

#include "storage/tier/budget.h"
#include "tiers/fake_catalog.h"

namespace moe {
namespace {

std::string error_of(std::string_view text, uint64_t total = 1000) {
  try {
    parse_budget(text, total);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(Budget, ParsesSizes) {
  EXPECT_EQ(parse_budget("6GiB", 0), 6ull << 30);
  EXPECT_EQ(parse_budget("512MiB", 0), 512ull << 20);
  EXPECT_EQ(parse_budget("1.5GB", 0), 1500000000ull);
  EXPECT_EQ(parse_budget("1.5gib", 0), 3ull << 29);
  EXPECT_EQ(parse_budget("2G", 0), 2ull << 30);
  EXPECT_EQ(parse_budget("64k", 0), 64ull << 10);
  EXPECT_EQ(parse_budget("100KB", 0), 100000ull);
  EXPECT_EQ(parse_budget("4096", 0), 4096ull);
  EXPECT_EQ(parse_budget(" 3 MiB ", 0), 3ull << 20);
  EXPECT_EQ(parse_budget("1TiB", 0), 1ull << 40);
}

TEST(Budget, ParsesPercentOfTheExperts) {
  EXPECT_EQ(parse_budget("50%", 1000), 500u);
  EXPECT_EQ(parse_budget("100%", 1000), 1000u);
  EXPECT_EQ(parse_budget("12.5%", 8ull << 30), 1ull << 30);
}

TEST(Budget, RejectsGarbageWithOneLine) {
  const std::string hint = "expected a size like 6GiB, 512MiB or 1.5GB, or a percentage like 50%";
  for (const char* bad : {"", "abc", "GiB", "6 gigs", "1.2.3G", "nan", "inf", "5%%", "0x10"})
    EXPECT_EQ(error_of(bad), fmt::format("--ram-budget '{}': {}", bad, hint)) << bad;
  EXPECT_EQ(error_of("0"), "--ram-budget '0': the budget must be above zero");
  EXPECT_EQ(error_of("-1GiB"), "--ram-budget '-1GiB': the budget must be above zero");
  EXPECT_EQ(error_of("0%"), "--ram-budget '0%': a percentage must be above 0% and at most 100%");
  EXPECT_EQ(error_of("150%"), "--ram-budget '150%': a percentage must be above 0% and at most 100%");
  EXPECT_NE(error_of("99999999TiB"), "");
}

// Size flags with nothing to take a share of: a percentage is an error, not 0 bytes.
TEST(Budget, SizeFlagsRefusePercentages) {
  EXPECT_EQ(parse_size("512MiB", "--prefix-cache"), 512ull << 20);
  const auto error = [](const char* text) {
    try {
      parse_size(text, "--prefix-cache");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error("50%"), "--prefix-cache '50%': takes a size like 512MiB or 2GiB, not a percentage");
  EXPECT_EQ(error("lots"), "--prefix-cache 'lots': expected a size like 6GiB, 512MiB or 1.5GB");
}

TEST(Budget, FormatsBytes) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1 << 20), "1.0 MiB");
  EXPECT_EQ(format_bytes(uint64_t(2.4 * (1 << 20))), "2.4 MiB");
  EXPECT_EQ(format_bytes(6ull << 30), "6.0 GiB");
  EXPECT_EQ(format_bytes(300ull << 20), "300 MiB");
}

TEST(Budget, MustHoldOneLayersTopK) {
  const test::TempDir tmp("budget");
  const auto& dir = tmp.path;
  test::FakeSpec spec;
  spec.inter = 40;  // 30 KiB per expert, padded to 32 KiB
  const test::FakeCatalog cat(dir / "fake.pack", spec);
  EXPECT_EQ(expert_cache_bytes(cat.record(0, 0)), 32u << 10);
  EXPECT_EQ(total_expert_bytes(cat), uint64_t(3 * 8) * (32u << 10));
  EXPECT_NO_THROW(check_budget(4 * (32u << 10), cat, 4));
  try {
    check_budget(1 << 16, cat, 4);
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "ram budget 64.0 KiB holds fewer experts than one layer's top-k (4 x 32.0 KiB); raise --ram-budget");
  }
  try {
    check_budget(4096, cat, 0);
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "ram budget 4.0 KiB is smaller than one expert (32.0 KiB); raise --ram-budget");
  }
}

}  // namespace
}  // namespace moe
