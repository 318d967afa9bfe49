// StreamDecoder: push() only returns complete UTF-8 text; all pieces together equal decode().
#include <gtest/gtest.h>

#include "tests/tokenizer/test_util.h"

namespace moe {
namespace {

using nlohmann::json;

std::string stream_all(const Tokenizer& t, const std::vector<int32_t>& ids, bool skip = false) {
  StreamDecoder sd(t, skip);
  std::string out;
  for (int32_t id : ids) out += sd.push(id);
  return out + sd.finish();
}

Tokenizer byte_fallback_tokenizer() {
  json j = test::bpe_tokenizer(test::llama_vocab({"\xE2\x96\x81", "h", "i", "\xE2\x96\x81hi", "hi"}),
                               json::array({"h i", "\xE2\x96\x81 hi"}));
  j["model"]["byte_fallback"] = true;
  j["model"]["unk_token"] = "<unk>";
  j["normalizer"] = json::parse(R"({"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "▁"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]})");
  j["decoder"] = test::llama_decoder();
  return test::make(j);
}

TEST(StreamDecoder, EmojiAcrossByteFallbackTokens) {
  Tokenizer t = byte_fallback_tokenizer();
  // "hi 😀": the emoji is not in the vocabulary, so it is encoded as 4 byte tokens.
  std::vector<int32_t> ids = t.encode("hi \xF0\x9F\x98\x80", false);
  ASSERT_EQ(ids.size(), 6u);
  StreamDecoder sd(t);
  EXPECT_EQ(sd.push(ids[0]), "hi");
  EXPECT_EQ(sd.push(ids[1]), " ");
  EXPECT_EQ(sd.push(ids[2]), "");
  EXPECT_EQ(sd.push(ids[3]), "");
  EXPECT_EQ(sd.push(ids[4]), "");
  EXPECT_EQ(sd.push(ids[5]), "\xF0\x9F\x98\x80");  // nothing until the character is complete
  EXPECT_EQ(sd.finish(), "");
  EXPECT_EQ(stream_all(t, ids), t.decode(ids));
}

TEST(StreamDecoder, ByteLevelTokensSplittingACjkChar) {
  json j = test::bpe_tokenizer(test::byte_level_vocab(), json::array());
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  Tokenizer t = test::make(j);
  std::vector<int32_t> ids = t.encode("a\xE4\xB8\xAD!");  // 'a', E4, B8, AD, '!'
  ASSERT_EQ(ids, (std::vector<int32_t>{'a', 0xE4, 0xB8, 0xAD, '!'}));
  StreamDecoder sd(t);
  EXPECT_EQ(sd.push(ids[0]), "a");
  EXPECT_EQ(sd.push(ids[1]), "");
  EXPECT_EQ(sd.push(ids[2]), "");
  EXPECT_EQ(sd.push(ids[3]), "\xE4\xB8\xAD");
  EXPECT_EQ(sd.push(ids[4]), "!");
  EXPECT_EQ(sd.finish(), "");
  // A truncated character at the end comes out of finish() exactly as decode() renders it.
  StreamDecoder sd2(t);
  EXPECT_EQ(sd2.push('x'), "x");
  EXPECT_EQ(sd2.push(0xE4), "");
  EXPECT_EQ(sd2.push(0xB8), "");
  EXPECT_EQ(sd2.finish(), "\xEF\xBF\xBD");
  // The decoder is reusable after finish().
  EXPECT_EQ(sd2.push('y'), "y");
  EXPECT_EQ(sd2.finish(), "");
}

TEST(StreamDecoder, MatchesDecodeOnFixtures) {
  auto dirs = test::fixture_dirs();
  if (dirs.empty()) GTEST_SKIP() << "no fixtures";
  const std::vector<std::string> texts = {
      "Hello world! This is a test.", " leading space and  double  spaces ",
      "caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",
      "line1\nline2\r\n\tindented", "<|im_start|>user\nhi<|im_end|>", "<s>[INST] x [/INST]"};
  for (const auto& d : dirs) {
    Tokenizer t = Tokenizer::load(d / "tokenizer.json");
    for (const auto& s : texts) {
      for (bool special : {false, true}) {
        auto ids = t.encode(s, special);
        EXPECT_EQ(stream_all(t, ids), t.decode(ids)) << d << ": " << s;
        EXPECT_EQ(stream_all(t, ids, true), t.decode(ids, true)) << d << ": " << s;
      }
    }
  }
}

}  // namespace
}  // namespace moe
