// Automatic placement on several machines, with a Mixtral-sized model: 1.5 GiB dense, 22 GiB
// of experts (88 MiB each, top-2), 128 KiB of KV per token (4096 x 1 = 512 MiB).
#include <gtest/gtest.h>

#include "storage/vram/placement.h"

namespace moe {
namespace {

constexpr uint64_t MiB = 1ull << 20, GiB = 1ull << 30;

ModelBytes mixtral() {
  ModelBytes b;
  b.dense_bytes = 3 * GiB / 2;
  b.expert_bytes = 22 * GiB;
  b.largest_expert = 88 * MiB;
  b.top_k = 2;
  b.kv_bytes_per_token = 128 * 1024;
  return b;
}

MachineInfo machine(uint64_t vram_total, uint64_t vram_free, uint64_t ram_total, uint64_t ram_avail) {
  return {vram_total, vram_free, ram_total, ram_avail};
}

TEST(Placement, EverythingFitsOnABigGpu) {
  const MachineInfo m = machine(80 * GiB, 79 * GiB, 128 * GiB, 120 * GiB);
  const Placement p = plan_placement(m, mixtral(), {});
  EXPECT_TRUE(p.gpu);
  EXPECT_EQ(p.kv_bytes, 512 * MiB);
  EXPECT_EQ(p.vram_headroom, 4 * GiB);  // 5% of 80 GiB
  EXPECT_EQ(p.vram_budget, 22 * GiB);   // capped at all experts
  EXPECT_TRUE(p.all_in_vram);
  EXPECT_EQ(p.ram_budget, 2 * 88 * MiB);  // RAM only passes experts through
  EXPECT_NE(format_plan(p, m, mixtral(), {}).find("all experts in VRAM: no cache machinery runs"), std::string::npos);
}

TEST(Placement, ExpertsSpillFromVramToRam) {
  const MachineInfo m = machine(24 * GiB, 23 * GiB, 64 * GiB, 60 * GiB);
  const Placement p = plan_placement(m, mixtral(), {});
  // 23 GiB - 1.5 dense - 0.5 KV - 1.2 headroom (5% of 24 GiB)
  EXPECT_EQ(p.vram_budget, 23 * GiB - 3 * GiB / 2 - 512 * MiB - 24 * GiB / 20);
  EXPECT_FALSE(p.all_in_vram);
  EXPECT_EQ(p.ram_budget, 22 * GiB);  // 60 - 6.4 headroom - 352 MiB staging > 22
  EXPECT_TRUE(p.all_in_ram);
  EXPECT_EQ(p.staging_bytes, 4 * 88 * MiB);
  const std::string s = format_plan(p, m, mixtral(), {});
  EXPECT_NE(s.find("experts spill from VRAM to RAM\n"), std::string::npos) << s;
  EXPECT_NE(s.find("(90%) [auto]"), std::string::npos) << s;
}

TEST(Placement, ExpertsSpillToDiskOnASmallMachine) {
  const MachineInfo m = machine(12 * GiB, 11 * GiB, 16 * GiB, 12 * GiB);
  const Placement p = plan_placement(m, mixtral(), {});
  EXPECT_EQ(p.vram_budget, 11 * GiB - 3 * GiB / 2 - 512 * MiB - 12 * GiB / 20);
  EXPECT_EQ(p.ram_headroom, 2 * GiB);  // max(2 GiB, 10% of 16 GiB)
  EXPECT_EQ(p.ram_budget, 12 * GiB - 2 * GiB - 4 * 88 * MiB);
  EXPECT_FALSE(p.all_in_ram);
  EXPECT_NE(format_plan(p, m, mixtral(), {}).find("spill from VRAM to RAM and disk"), std::string::npos);
}

TEST(Placement, AGpuTooSmallForTheDenseWeightsIsOneClearLine) {
  const MachineInfo m = machine(4 * GiB, 2 * GiB, 64 * GiB, 60 * GiB);
  try {
    plan_placement(m, mixtral(), {});
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    const std::string s = e.what();
    // 1.5 GiB + 0.5 GiB + 512 MiB + 176 MiB = 2.7 GiB
    EXPECT_NE(s.find("it needs 2.7 GiB"), std::string::npos) << s;
    EXPECT_NE(s.find("2.0 GiB is free"), std::string::npos) << s;
    EXPECT_NE(s.find("for context 4096 x 1 sequence(s)"), std::string::npos) << s;
    EXPECT_EQ(s.find("--context"), std::string::npos) << s;  // no such flag
    EXPECT_NE(s.find("--device cpu"), std::string::npos) << s;
    EXPECT_EQ(s.find('\n'), std::string::npos);
  }
}

TEST(Placement, CpuOnlyMachineKeepsEverythingInRam) {
  const MachineInfo m = machine(0, 0, 64 * GiB, 60 * GiB);
  const Placement p = plan_placement(m, mixtral(), {});
  EXPECT_FALSE(p.gpu);
  EXPECT_EQ(p.vram_budget, 0u);
  EXPECT_EQ(p.staging_bytes, 0u);
  EXPECT_EQ(p.ram_budget, 22 * GiB);
  EXPECT_NE(format_plan(p, m, mixtral(), {}).find("no GPU"), std::string::npos);

  const MachineInfo small = machine(0, 0, 8 * GiB, 6 * GiB);
  const Placement q = plan_placement(small, mixtral(), {});
  EXPECT_EQ(q.ram_budget, 6 * GiB - 2 * GiB - 3 * GiB / 2 - 512 * MiB);  // dense and KV live in RAM too
  EXPECT_FALSE(q.all_in_ram);

  const MachineInfo tiny = machine(0, 0, 4 * GiB, 3 * GiB);
  EXPECT_THROW(plan_placement(tiny, mixtral(), {}), std::invalid_argument);
}

TEST(Placement, FlagsOverrideThePlanAndWarnWhenTooBig) {
  const MachineInfo m = machine(24 * GiB, 23 * GiB, 64 * GiB, 60 * GiB);
  PlacementFlags f;
  f.vram_budget = "50%";
  f.ram_budget = "8GiB";
  Placement p = plan_placement(m, mixtral(), f);
  EXPECT_EQ(p.vram_budget, 11 * GiB);
  EXPECT_EQ(p.ram_budget, 8 * GiB);
  EXPECT_TRUE(p.vram_from_flag && p.ram_from_flag);
  EXPECT_TRUE(p.warnings.empty());
  EXPECT_NE(format_plan(p, m, mixtral(), f).find("[--vram-budget]"), std::string::npos);

  f.vram_budget = "100%";  // 22 GiB: more than the 19.8 GiB free after dense, KV and headroom
  p = plan_placement(m, mixtral(), f);
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_NE(p.warnings[0].find("--vram-budget 22.0 GiB"), std::string::npos) << p.warnings[0];

  f.vram_budget = "lots";
  try {
    plan_placement(m, mixtral(), f);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--vram-budget 'lots'", 0), 0u) << e.what();
  }

  PlacementFlags cpu;
  cpu.cpu_only = true;
  EXPECT_FALSE(plan_placement(m, mixtral(), cpu).gpu);
}

TEST(Placement, LongerContextAndBatchGrowTheKvAndShrinkTheExperts) {
  const MachineInfo m = machine(24 * GiB, 23 * GiB, 64 * GiB, 60 * GiB);
  PlacementFlags f;
  f.context = 32768;
  f.batch = 2;
  const Placement p = plan_placement(m, mixtral(), f);
  EXPECT_EQ(p.kv_bytes, 8 * GiB);
  EXPECT_EQ(p.vram_budget, 23 * GiB - 3 * GiB / 2 - 8 * GiB - 24 * GiB / 20);
}

// --vram-limit: an 80 GiB GPU standing in for a 24 GiB card plans exactly as the card would.
TEST(Placement, VramLimitPlansForTheSmallerCard) {
  const MachineInfo big = machine(80 * GiB, 79 * GiB, 64 * GiB, 60 * GiB), card = machine(24 * GiB, 24 * GiB, 64 * GiB, 60 * GiB);
  PlacementFlags f;
  f.vram_limit = "24GiB";
  const Placement p = plan_placement(big, mixtral(), f), want = plan_placement(card, mixtral(), {});
  EXPECT_EQ(p.vram_limit, 24 * GiB);
  EXPECT_EQ(p.vram_headroom, want.vram_headroom);  // 5% of the card, not of the GPU
  EXPECT_EQ(p.vram_budget, want.vram_budget);
  EXPECT_EQ(p.vram_budget, 24 * GiB - 3 * GiB / 2 - 512 * MiB - 24 * GiB / 20);
  EXPECT_FALSE(p.all_in_vram);
  const std::string s = format_plan(p, big, mixtral(), f);
  EXPECT_NE(s.find("capped at 24.0 GiB [--vram-limit]"), std::string::npos) << s;
  // A budget flag must fit under the limit: an explicit cap is a promise.
  f.vram_budget = "21GiB";
  try {
    plan_placement(big, mixtral(), f);
    ADD_FAILURE() << "a budget over the limit was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit under --vram-limit"), std::string::npos) << e.what();
  }
  f.vram_budget = "10GiB";
  EXPECT_EQ(plan_placement(big, mixtral(), f).vram_budget, 10 * GiB);
}

TEST(Placement, VramLimitErrorsSayWhatToChange) {
  const MachineInfo big = machine(80 * GiB, 79 * GiB, 64 * GiB, 60 * GiB);
  PlacementFlags f;
  f.vram_limit = "2GiB";  // under dense + KV + headroom
  try {
    plan_placement(big, mixtral(), f);
    ADD_FAILURE() << "a limit under the dense weights was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("under --vram-limit 2.0 GiB"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("raise --vram-limit"), std::string::npos) << e.what();
  }
  f.vram_limit = "30%";
  EXPECT_THROW(plan_placement(big, mixtral(), f), std::invalid_argument);
  f.vram_limit = "lots";
  EXPECT_THROW(plan_placement(big, mixtral(), f), std::invalid_argument);
  f.vram_limit = "100GiB";  // more than the GPU: its own size applies, with a warning
  const Placement p = plan_placement(big, mixtral(), f);
  EXPECT_EQ(p.vram_budget, plan_placement(big, mixtral(), {}).vram_budget);
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_NE(p.warnings[0].find("--vram-limit"), std::string::npos);
  PlacementFlags cpu = f;
  cpu.cpu_only = true;  // no GPU: the limit means nothing and is not parsed
  EXPECT_EQ(plan_placement(big, mixtral(), cpu).vram_limit, 0u);
}

TEST(Placement, MeminfoIsParsed) {
  const MachineInfo m = parse_meminfo("MemTotal:       65536000 kB\nMemFree:  100 kB\nMemAvailable:   32768000 kB\n");
  EXPECT_EQ(m.ram_total, 65536000ull * 1024);
  EXPECT_EQ(m.ram_available, 32768000ull * 1024);
  EXPECT_EQ(m.vram_free, 0u);
  EXPECT_THROW(parse_meminfo("MemTotal: 1 kB\n"), std::runtime_error);
  EXPECT_GT(probe_host_memory().ram_total, 0u);
}

}  // namespace
}  // namespace moe
