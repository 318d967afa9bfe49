// serve/batch: the token caps run_job adds up for the progress line, and the ETA drawn from them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "serve/batch/batch_job.h"

namespace fs = std::filesystem;
using namespace moe::serve::batch;

namespace {

// max_tokens_left after running `jsonl` (one request per line) with a handler that answers at once.
int64_t caps_after_run(const std::string& jsonl, int64_t cap) {
  const fs::path dir = fs::temp_directory_path() / ("moe_batch_caps_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path in = dir / "in.jsonl", out = dir / "out.jsonl";
  std::ofstream(in) << jsonl;
  fs::remove(out);
  const BatchInput input = read_input(in);
  Progress p;
  JobOptions o{out, false, 4, cap};
  run_job(input.lines, {in.string(), input.xxh64, "m", "id"}, o,
          [](const std::string&, const std::string&) { return std::pair<int, std::string>{200, "{}"}; }, p);
  EXPECT_EQ(p.done, p.total);  // every line answered (errors among them)
  fs::remove_all(dir);
  return p.max_tokens_left;
}

std::string line(const std::string& id, const std::string& extra) {
  return R"({"custom_id": ")" + id + R"(", "method": "POST", "url": "/v1/completions", "body": {"prompt": "x")" + extra +
         "}}\n";
}

}  // namespace

TEST(BatchProgress, RunJobAddsUpEveryRequestsCap) {
  const std::string capped = line("a", R"(, "max_tokens": 10)") + line("b", R"(, "max_completion_tokens": 20)") +
                             "not json\n";  // an error line has nothing to generate
  EXPECT_EQ(caps_after_run(capped, 0), 30);
  EXPECT_EQ(caps_after_run(capped, 15), 25);  // --max-tokens caps what a request asks
  const std::string open = capped + line("c", "");
  EXPECT_EQ(caps_after_run(open, 0), 0);  // one request without a cap: unknown
  EXPECT_EQ(caps_after_run(open, 15), 40);  // --max-tokens caps it too
  EXPECT_EQ(caps_after_run(line("d", R"(, "max_tokens": "lots")"), 0), 0);  // not a count: unknown
}

TEST(BatchProgress, EtaFromTheLargerShareOfRequestsAndTokens) {
  Progress p;
  p.total = 10;
  EXPECT_LT(eta_seconds(p, 10.0, {}), 0);  // nothing done, no caps: unknown
  p.max_tokens_left = 1000;
  EXPECT_LT(eta_seconds(p, 10.0, {}), 0);  // nothing admitted yet: unknown
  // 5 of 10 requests admitted with 500 prompt tokens: 1,000 prompt tokens expected in all, so
  // 2,000 tokens of work; 500 through the engine in 10 s: a quarter, 30 s left.
  const TokenCounts quarter{5, 500, 400, 100};
  EXPECT_DOUBLE_EQ(eta_seconds(p, 10.0, quarter), 30.0);
  p.done = 5;
  EXPECT_DOUBLE_EQ(eta_seconds(p, 10.0, quarter), 10.0);  // half the requests: the larger share
  p.done = 0;
  EXPECT_DOUBLE_EQ(eta_seconds(p, 10.0, {10, 1000, 1000, 5000}), 0.0);  // past the caps: done
  p.max_tokens_left = 0;
  p.skipped = 5;
  p.done = 1;
  EXPECT_DOUBLE_EQ(eta_seconds(p, 10.0, quarter), 40.0);  // no caps: 1 of the 5 left to this run
}
