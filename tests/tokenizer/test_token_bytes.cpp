// Tokenizer::token_bytes (what grammars match tokens by): the bytes of a text's tokens, joined,
// are the text itself, including tokens that hold part of a UTF-8 character.
#include <gtest/gtest.h>

#include "test_util.h"

namespace moe::test {
namespace {

const char* const kTexts[] = {"Hello, world!", "{\"a\": [1, 2.5e-3], \"b\": \"x\\\"y\"}\n",
                              "naïve café 中文 😀 𝄞", "  two  spaces\tand a tab", "line\n\nbreaks\r\n"};

std::vector<std::filesystem::path> tokenizer_dirs() {
  auto dirs = fixture_dirs();
  dirs.push_back(source_dir() / "models" / "tiny-moe");
  return dirs;
}

TEST(TokenBytes, JoinedTokensAreTheText) {
  for (const auto& dir : tokenizer_dirs()) {
    const Tokenizer tok = Tokenizer::load(dir / "tokenizer.json");
    for (const char* text : kTexts) {
      const auto ids = tok.encode(text, false);
      std::string joined;
      for (int32_t id : ids) joined += tok.token_bytes(id);
      const std::string decoded = tok.decode(ids, false);
      // Byte-level BPE: exactly the text. SentencePiece-style (Mixtral): the decoder strips the
      // leading space the pre-tokenizer added, which mid-text bytes keep.
      ASSERT_GE(joined.size(), decoded.size()) << dir;
      const std::string head = joined.substr(0, joined.size() - decoded.size());
      EXPECT_EQ(joined.substr(head.size()), decoded) << dir << ": " << text;
      EXPECT_EQ(head.find_first_not_of(' '), std::string::npos) << dir << ": '" << head << "'";
      EXPECT_EQ(decoded, text) << dir;
    }
  }
}

TEST(TokenBytes, PartialCharactersStayRaw) {
  const Tokenizer tok = Tokenizer::load(source_dir() / "tests/fixtures/qwen3_moe/tokenizer.json");
  // Byte-level BPE has one token per byte: 0xF0 alone is "ð" in the byte map.
  const auto id = tok.token_to_id(tok::bytes_to_unicode("\xF0"));
  ASSERT_TRUE(id);
  EXPECT_EQ(tok.token_bytes(*id), "\xF0");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{*id}), "\xEF\xBF\xBD");  // decode replaces it
  const Tokenizer mx = Tokenizer::load(source_dir() / "tests/fixtures/mixtral/tokenizer.json");
  const auto b = mx.token_to_id("<0xF0>");
  ASSERT_TRUE(b);  // Mixtral's vocabulary has the byte-fallback tokens
  EXPECT_EQ(mx.token_bytes(*b), "\xF0");
  EXPECT_EQ(mx.token_bytes(-1), "");
}

}  // namespace
}  // namespace moe::test
