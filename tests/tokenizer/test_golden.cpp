// Golden tests: every tests/fixtures/*/golden/golden.json "tokenization" entry (produced with HF
// tokenizers) must be reproduced exactly: encode with and without special tokens, and decode.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "tests/tokenizer/test_util.h"

namespace moe {
namespace {

using nlohmann::json;

struct Fixture {
  std::filesystem::path dir;
  json golden;
};

std::vector<Fixture> golden_fixtures() {
  std::vector<Fixture> out;
  for (const auto& d : test::fixture_dirs()) {
    auto path = d / "golden" / "golden.json";
    if (!std::filesystem::exists(path)) continue;
    std::ifstream in(path);
    out.push_back({d, json::parse(in)});
  }
  return out;
}

TEST(Golden, EnoughFixtures) {
  auto fixtures = golden_fixtures();
  ASSERT_GE(fixtures.size(), 3u) << "expected tests/fixtures/<model>/golden/golden.json for at least "
                                    "3 models under "
                                 << (test::source_dir() / "tests" / "fixtures");
}

TEST(Golden, EncodeAndDecodeMatchHuggingFace) {
  auto fixtures = golden_fixtures();
  ASSERT_FALSE(fixtures.empty());
  for (const auto& f : fixtures) {
    SCOPED_TRACE(f.dir.string());
    Tokenizer t = Tokenizer::load(f.dir / "tokenizer.json", f.dir / "tokenizer_config.json");
    const json& entries = f.golden.at("tokenization");
    ASSERT_FALSE(entries.empty());
    for (const auto& e : entries) {
      std::string text = e.at("text").get<std::string>();
      auto ids = e.at("ids").get<std::vector<int32_t>>();
      auto ids_special = e.at("ids_with_special").get<std::vector<int32_t>>();
      std::string decoded = e.at("decoded").get<std::string>();
      EXPECT_EQ(t.encode(text, false), ids) << "text: " << text;
      EXPECT_EQ(t.encode(text, true), ids_special) << "text: " << text;
      EXPECT_EQ(t.decode(ids), decoded) << "text: " << text;
      if (e.contains("tokens")) {
        auto tokens = e.at("tokens").get<std::vector<std::string>>();
        ASSERT_EQ(tokens.size(), ids.size());
        for (size_t i = 0; i < ids.size(); ++i) {
          EXPECT_EQ(t.id_to_token(ids[i]), tokens[i]) << "text: " << text << " #" << i;
          EXPECT_EQ(t.token_to_id(tokens[i]), std::optional<int32_t>(ids[i]));
        }
      }
      StreamDecoder sd(t);
      std::string streamed;
      for (int32_t id : ids) streamed += sd.push(id);
      streamed += sd.finish();
      EXPECT_EQ(streamed, decoded) << "text: " << text;
      for (int32_t id : ids_special) EXPECT_LT(id, t.vocab_size());
    }
  }
}

TEST(Golden, SpecialTokensFromConfig) {
  for (const auto& d : test::fixture_dirs()) {
    SCOPED_TRACE(d.string());
    auto cfg_path = d / "tokenizer_config.json";
    if (!std::filesystem::exists(cfg_path)) continue;
    std::ifstream in(cfg_path);
    json cfg = json::parse(in);
    Tokenizer t = Tokenizer::load(d / "tokenizer.json");  // finds tokenizer_config.json itself
    auto token_of = [&](const char* key) -> std::optional<std::string> {
      if (!cfg.contains(key) || cfg[key].is_null()) return std::nullopt;
      return cfg[key].is_string() ? cfg[key].get<std::string>() : cfg[key].at("content").get<std::string>();
    };
    if (auto eos = token_of("eos_token")) {
      ASSERT_TRUE(t.eos_id().has_value());
      EXPECT_EQ(t.id_to_token(*t.eos_id()), *eos);
      EXPECT_TRUE(t.is_special(*t.eos_id()));
      // Special tokens are skipped when asked to.
      std::vector<int32_t> ids = t.encode("Hi", false);
      std::string plain = t.decode(ids);
      ids.push_back(*t.eos_id());
      EXPECT_EQ(t.decode(ids), plain + *eos);
      EXPECT_EQ(t.decode(ids, true), plain);
    }
    if (auto bos = token_of("bos_token")) {
      ASSERT_TRUE(t.bos_id().has_value());
      EXPECT_EQ(t.id_to_token(*t.bos_id()), *bos);
    }
    if (cfg.contains("chat_template") && cfg["chat_template"].is_string()) {
      EXPECT_EQ(t.chat_template(), cfg["chat_template"].get<std::string>());
    }
  }
}

TEST(Golden, QwenChatMarkup) {
  auto dir = test::source_dir() / "tests" / "fixtures" / "qwen3_moe";
  if (!std::filesystem::exists(dir / "tokenizer.json")) GTEST_SKIP() << "no qwen3_moe fixture";
  Tokenizer t = Tokenizer::load(dir / "tokenizer.json");
  auto start = t.token_to_id("<|im_start|>");
  auto end = t.token_to_id("<|im_end|>");
  ASSERT_TRUE(start && end);
  EXPECT_EQ(t.bos_id(), std::nullopt);
  EXPECT_EQ(t.eos_id(), end);
  std::string chat = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n";
  auto ids = t.encode(chat);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), *start);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *start), 2);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), *end), 1);
  EXPECT_EQ(t.decode(ids), chat);
  EXPECT_EQ(t.decode(ids, true), "user\nWhat is 2+2?\nassistant\n");
}

TEST(Golden, MixtralAddsBos) {
  auto dir = test::source_dir() / "tests" / "fixtures" / "mixtral";
  if (!std::filesystem::exists(dir / "tokenizer.json")) GTEST_SKIP() << "no mixtral fixture";
  Tokenizer t = Tokenizer::load(dir / "tokenizer.json");
  ASSERT_EQ(t.bos_id(), t.token_to_id("<s>"));
  auto ids = t.encode("Hello");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), *t.bos_id());
  EXPECT_EQ(t.encode("Hello", false), std::vector<int32_t>(ids.begin() + 1, ids.end()));
  EXPECT_EQ(t.decode(ids, true), "Hello");
}

}  // namespace
}  // namespace moe
