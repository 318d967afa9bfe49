// Malformed or unsupported tokenizer.json files give one-line std::runtime_error messages that
// name the file and the problem.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

#include "tests/tokenizer/test_util.h"

namespace moe {
namespace {

using nlohmann::json;

std::string load_error(const std::string& tokenizer_json, const std::string& config = {}) {
  try {
    Tokenizer::from_json(tokenizer_json, config);
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  }
  ADD_FAILURE() << "no exception for: " << tokenizer_json.substr(0, 200);
  return {};
}

json valid() { return test::bpe_tokenizer({{"a", 0}, {"b", 1}, {"ab", 2}}, json::array({"a b"})); }

TEST(Errors, MissingModel) {
  json j = valid();
  j.erase("model");
  std::string msg = load_error(j.dump());
  EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model"), std::string::npos) << msg;
}

TEST(Errors, UnsupportedModelType) {
  json j = valid();
  j["model"] = {{"type", "Unigram"}, {"unk_id", 0}, {"vocab", json::array({json::array({"a", 0.0})})}};
  std::string msg = load_error(j.dump());
  EXPECT_NE(msg.find("Unigram"), std::string::npos) << msg;
  j["model"]["type"] = "WordPiece";
  EXPECT_NE(load_error(j.dump()).find("WordPiece"), std::string::npos);
}

TEST(Errors, MergeWithUnknownToken) {
  json j = valid();
  j["model"]["merges"] = json::array({"a b", "a zz"});
  std::string msg = load_error(j.dump());
  EXPECT_NE(msg.find("zz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("merge #2"), std::string::npos) << msg;
  j["model"]["merges"] = json::array({"a b c"});
  EXPECT_NE(load_error(j.dump()).find("merge #1"), std::string::npos);
}

TEST(Errors, UnsupportedComponents) {
  json j = valid();
  j["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}};
  EXPECT_NE(load_error(j.dump()).find("normalizer type 'Precompiled'"), std::string::npos);
  j = valid();
  j["pre_tokenizer"] = {{"type", "UnicodeScripts"}};
  EXPECT_NE(load_error(j.dump()).find("pre_tokenizer type 'UnicodeScripts'"), std::string::npos);
  j = valid();
  j["decoder"] = {{"type", "CTC"}};
  EXPECT_NE(load_error(j.dump()).find("decoder type 'CTC'"), std::string::npos);
  j = valid();
  j["post_processor"] = {{"type", "Mystery"}};
  EXPECT_NE(load_error(j.dump()).find("post_processor type 'Mystery'"), std::string::npos);
  j = valid();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  EXPECT_NE(load_error(j.dump()).find("invalid regex"), std::string::npos);
  j = valid();
  j["normalizer"] = {{"nothing", 1}};
  EXPECT_NE(load_error(j.dump()).find("normalizer"), std::string::npos);
}

TEST(Errors, BadJsonAndConfig) {
  EXPECT_NE(load_error("{not json").find("tokenizer.json"), std::string::npos);
  EXPECT_NE(load_error("[1, 2]").find("object"), std::string::npos);
  std::string msg = load_error(valid().dump(), R"({"bos_token": "<nope>"})");
  EXPECT_NE(msg.find("tokenizer_config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("<nope>"), std::string::npos) << msg;
}

TEST(Errors, LoadNamesTheFile) {
  auto dir = std::filesystem::temp_directory_path() / ("moe_tokenizer_errors_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto missing = dir / "does_not_exist.json";
  try {
    Tokenizer::load(missing);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
  }
  auto bad = dir / "tokenizer.json";
  {
    json j = valid();
    j["model"]["type"] = "Unigram";
    std::ofstream(bad) << j.dump();
  }
  try {
    Tokenizer::load(bad);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(bad.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("Unigram"), std::string::npos) << msg;
  }
  // A missing tokenizer_config.json is fine.
  std::ofstream(bad) << valid().dump();
  Tokenizer t = Tokenizer::load(bad, dir / "no_config.json");
  EXPECT_EQ(t.encode("ab"), (std::vector<int32_t>{2}));
  EXPECT_EQ(t.bos_id(), std::nullopt);
  EXPECT_EQ(t.chat_template(), "");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace moe
