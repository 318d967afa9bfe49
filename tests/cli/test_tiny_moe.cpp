// The shipped default model (models/tiny-moe, trained by training/train_tiny_moe.py): held-out
// perplexity through our engine stays within the committed bound and far below the unigram
// baseline, and its quantized packs stay close to it. (Logits vs HF and the fixed greedy
// continuation are checked by HfMatch.*/tiny-moe.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/moe_cli.h"

namespace fs = std::filesystem;
using moe::test::moe_cli;

namespace {
fs::path model() { return fs::path(MOE_SOURCE_DIR) / "models" / "tiny-moe"; }
nlohmann::json eval_json() {
  std::ifstream in(model() / "eval.json");
  return nlohmann::json::parse(in);
}
}  // namespace

TEST(TinyMoe, HeldOutPerplexityWithinCommittedBound) {
  const auto committed = eval_json()["perplexity"]["docs"];
  const auto r = moe_cli("perplexity --model " + model().string() + " --file " +
                             (model() / "eval" / "heldout_docs.txt").string() + " --context 256",
                         false);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  std::printf("[ metric ] tiny-moe held-out docs perplexity %.3f (committed %.3f, unigram %.1f)\n",
              j["perplexity"].get<double>(), committed["perplexity"].get<double>(), j["unigram_perplexity"].get<double>());
  EXPECT_EQ(j["predicted"], committed["predicted"]);
  EXPECT_LT(j["perplexity"].get<double>(), committed["perplexity"].get<double>() * 1.01);
  EXPECT_LT(j["perplexity"].get<double>(), j["unigram_perplexity"].get<double>() / 4);
}

TEST(TinyMoe, QuantizedPacksStayClose) {
  const fs::path text = model() / "eval" / "heldout_code.txt";
  const fs::path cut = fs::temp_directory_path() / "moe-tiny-compare.txt";
  {
    std::ifstream in(text);
    std::string s(8000, '\0');
    in.read(s.data(), std::streamsize(s.size()));
    s.resize(size_t(in.gcount()));
    std::ofstream(cut) << s;
  }
  for (const std::string q : {"int4", "fp8"}) {
    const fs::path pack = fs::temp_directory_path() / ("moe-tiny-" + q + ".moepack");
    auto r = moe_cli("convert " + model().string() + " " + pack.string() + " --experts " + q, false);
    ASSERT_EQ(r.code, 0) << r.out;
    r = moe_cli("compare --json --model " + pack.string() + " --ref " + model().string() + " --file " + cut.string(), false);
    ASSERT_EQ(r.code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    std::printf("[ metric ] tiny-moe %s: KL %.4f top-1 %.3f ppl %.2f vs %.2f\n", q.c_str(), j["kl_mean"].get<double>(),
                j["top1_agreement"].get<double>(), j["perplexity"].get<double>(), j["ref_perplexity"].get<double>());
    EXPECT_LT(j["kl_mean"].get<double>(), q == "int4" ? 0.005 : 0.001);
    EXPECT_GT(j["top1_agreement"].get<double>(), q == "int4" ? 0.95 : 0.98);
    fs::remove(pack);
  }
  fs::remove(cut);
}

// Prefetch must not change tokens (issue: prefetch, acceptance 1), on a model whose routing
// is real; and on such routing early routing must beat chance (top-4 of 16 experts: 0.25).
TEST(TinyMoe, PrefetchKeepsTokensAndPredictsRealRouting) {
  const fs::path pack = fs::temp_directory_path() / "moe-tiny-prefetch.moepack";
  auto r = moe_cli("convert " + model().string() + " " + pack.string() + " --experts int4", false);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string base = "run --model " + pack.string() +
                           " --prompt 'import os\ndef list_files(path):' -n 48 --temp 0.9 --seed 3 --no-echo --ram-budget 30%";
  const auto ref = moe_cli(base + " --prefetch off", false);
  ASSERT_EQ(r.code, 0) << ref.out;
  ASSERT_FALSE(ref.out.empty());
  for (const std::string s : {"--prefetch gate --lookahead 1", "--prefetch gate --lookahead 2", "--prefetch gate --lookahead 4",
                              "--prefetch history", "--prefetch blend --policy lfu", "--prefetch gate --io pread --prefetch-share 1",
                              "--prefetch gate --prefetch-k 8 --prefetch-inflight 64KiB"}) {
    const auto got = moe_cli(base + " " + s, false);
    EXPECT_EQ(got.code, 0) << s;
    EXPECT_EQ(got.out, ref.out) << s;
  }
  const auto st = moe_cli(base + " --prefetch gate --lookahead 2 --stats", true);
  ASSERT_EQ(st.code, 0) << st.out;
  const auto at = st.out.find("predictor recall@k d=1: ");
  ASSERT_NE(at, std::string::npos) << st.out;
  const double recall = std::stod(st.out.substr(at + 24));
  std::printf("[ metric ] tiny-moe gate predictor recall@4 at lookahead 1: %.3f\n", recall);
  EXPECT_GT(recall, 0.5);
  const auto pr = st.out.find("prefetch: precision ");
  ASSERT_NE(pr, std::string::npos) << st.out;
  EXPECT_GT(std::stod(st.out.substr(pr + 20)), 0.0) << st.out;
  fs::remove(pack);
}

// The committed real-routing traces replayed by trace-sim: Belady bounds every demand policy,
// early routing beats chance (0.25), and prefetch on top of LFU beats LFU alone.
TEST(TinyMoe, TraceSimOnRealRouting) {
  for (const char* k : {"code", "docs", "chat"}) {
    const fs::path t = model() / "trace" / (std::string("decode-") + k + ".jsonl");
    const auto r = moe_cli("trace-sim --trace " + t.string() + " --cache-bytes 50% --lookahead 2 --json", false);
    ASSERT_EQ(r.code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    std::map<std::string, double> hit;
    for (const auto& p : j["policies"]) hit[p["policy"].get<std::string>()] = p["hit_rate"].get<double>();
    std::printf("[ metric ] tiny-moe %s trace, cache 50%%: lru %.3f lfu %.3f lfu+prefetch %.3f belady %.3f\n", k, hit["lru"],
                hit["lfu"], hit["lfu+prefetch"], hit["belady"]);
    EXPECT_GE(hit["belady"], hit["lru"]);
    EXPECT_GE(hit["belady"], hit["lfu"]);
    EXPECT_GT(hit["lfu+prefetch"], hit["lfu"]);
    for (const auto& rc : j["recall"]) {
      if (rc["lookahead"] == 1 && rc["k"] == 4) {
        EXPECT_GT(rc["recall"].get<double>(), 0.5) << k;
      }
    }
  }
}
