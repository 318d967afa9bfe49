// `moe trace-sim` on a hand-made trace (tests/data/trace_small.jsonl: two MoE layers of 8
// experts behind a dense one, top-2, 1 MiB experts, gate predictions one layer ahead):
// the table, the JSON figures, and one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/moe_cli.h"

namespace fs = std::filesystem;
using moe::test::moe_cli;

namespace {

const std::string kTrace = (fs::path(MOE_SOURCE_DIR) / "tests" / "data" / "trace_small.jsonl").string();

nlohmann::json sim_json(const std::string& args) {
  const auto r = moe_cli("trace-sim --json --trace " + kTrace + " " + args, false);
  EXPECT_EQ(r.code, 0) << r.out;
  return nlohmann::json::parse(r.out);
}

TEST(TraceSimCli, TableShowsEveryPolicyAndTheRecall) {
  const auto r = moe_cli("trace-sim --trace " + kTrace + " --cache-per-layer 3");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* s : {"3 experts per MoE layer", "\nlru ", "\nlfu ", "\nlru+prefetch ", "\nlfu+prefetch ",
                        "\nbelady ", "hit rate", "bytes/token", "MiB", "predictor recall", "k=2", "k=4"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

TEST(TraceSimCli, JsonFigures) {
  const auto j = sim_json("--cache-bytes 50%");
  EXPECT_EQ(j["cache"]["kind"], "global");
  EXPECT_EQ(j["cache"]["bytes"].get<uint64_t>(), 8ull << 20);  // half of 2 x 8 experts of 1 MiB
  EXPECT_EQ(j["tokens"].get<int>(), 12);
  EXPECT_EQ(j["steps"].get<int>(), 10);
  ASSERT_EQ(j["policies"].size(), 7u);
  std::map<std::string, nlohmann::json> by;
  for (const auto& p : j["policies"]) by[p["policy"]] = p;
  for (const char* p : {"lru", "lfu", "nextuse"}) {
    EXPECT_GE(by["belady"]["hits"].get<int>(), by[p]["hits"].get<int>()) << p;
    EXPECT_TRUE(by[p]["prefetch_precision"].is_null()) << p;
  }
  for (const auto& [name, p] : by) {
    EXPECT_EQ(p["hits"].get<int>() + p["misses"].get<int>(), p["accesses"].get<int>()) << name;
    EXPECT_NEAR(p["bytes_per_token"].get<double>(),
                double(p["miss_bytes"].get<uint64_t>() + p["prefetch_bytes"].get<uint64_t>()) / 12, 1e-6)
        << name;
  }
  EXPECT_GT(by["lru+prefetch"]["prefetches"].get<int>(), 0);
  EXPECT_LE(by["lru+prefetch"]["prefetch_precision"].get<double>(), 1.0);
  ASSERT_EQ(j["recall"].size(), 2u);
  EXPECT_EQ(j["recall"][0]["k"], 2);
  EXPECT_EQ(j["recall"][1]["k"], 4);
  EXPECT_EQ(j["recall"][0]["samples"], 10);

  const auto lru = sim_json("--cache-bytes 8MiB --policy lru");
  ASSERT_EQ(lru["policies"].size(), 1u);
  EXPECT_EQ(lru["policies"][0]["hits"], by["lru"]["hits"]);
  const auto frac = sim_json("--cache-frac 0.25");
  EXPECT_EQ(frac["cache"]["experts_per_layer"], nlohmann::json({0, 2, 2}));
}

TEST(TraceSimCli, ErrorsAreOneLine) {
  const fs::path bad = fs::temp_directory_path() / "moe-trace-sim-bad.jsonl";
  {
    std::ifstream in(kTrace);
    std::string header, first;
    std::getline(in, header);
    std::getline(in, first);
    std::ofstream(bad) << header << "\n"
                       << first << "\n"
                       << R"({"step":0,"layer":2,"seq":[0],"pos":[0],"experts":[[9,1]],"weights":[[1,0]]})"
                       << "\n";
  }
  const std::pair<std::string, std::string> cases[] = {
      {"--trace /nonexistent.jsonl --cache-per-layer 2", "moe: error: cannot open routing trace /nonexistent.jsonl"},
      {"--trace " + kTrace, "moe: error: a cache capacity is required"},
      {"--trace " + kTrace + " --cache-per-layer 2 --cache-bytes 50%", "moe: error: give only one cache capacity"},
      {"--trace " + kTrace + " --cache-bytes lots", "moe: error: --cache-bytes 'lots': expected a size"},
      {"--trace " + kTrace + " --cache-per-layer 1", "smaller than top_k 2"},
      {"--trace " + kTrace + " --cache-frac 0.5 --policy fifo", "moe: error: --policy 'fifo'"},
      {"--trace " + bad.string() + " --cache-frac 0.5",
       "moe: error: " + bad.string() + ":3: token 0: expert id 9 out of range for layer 2 (8 experts)"},
  };
  for (const auto& [args, what] : cases) {
    const auto r = moe_cli("trace-sim " + args);
    EXPECT_EQ(r.code, 1) << args;
    EXPECT_NE(r.out.find(what), std::string::npos) << args << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
  }
  fs::remove(bad);
}

}  // namespace
