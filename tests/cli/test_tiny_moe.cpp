// The shipped default model (models/tiny-moe, trained by tools/train_tiny_moe.py): held-out
// perplexity through our engine stays within the committed bound and far below the unigram
// baseline, and its quantized packs stay close to it. (Logits vs HF and the fixed greedy
// continuation are checked by HfMatch.*/tiny-moe.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
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
