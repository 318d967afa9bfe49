// Unit tests of the tokenizer components on small hand-made tokenizer.json documents.
#include <gtest/gtest.h>

#include <set>

#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/unicode.h"
#include "tests/tokenizer/test_util.h"

namespace moe {
namespace {

using nlohmann::json;
using test::make;

TEST(ByteLevelMap, RoundTripsEveryByte) {
  std::set<char32_t> seen;
  std::string all;
  for (int b = 0; b < 256; ++b) {
    char32_t c = tok::byte_to_char(static_cast<uint8_t>(b));
    seen.insert(c);
    ASSERT_EQ(tok::char_to_byte(c), std::optional<uint8_t>(static_cast<uint8_t>(b))) << b;
    all.push_back(static_cast<char>(b));
  }
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(tok::byte_to_char(' '), 0x120u);   // 'Ġ'
  EXPECT_EQ(tok::byte_to_char('\n'), 0x10Au);  // 'Ċ'
  EXPECT_EQ(tok::byte_to_char('A'), static_cast<char32_t>('A'));
  EXPECT_EQ(tok::byte_to_char(0xAD), 0x143u);  // soft hyphen is not printable
  EXPECT_EQ(tok::unicode_to_bytes(tok::bytes_to_unicode(all)), std::optional<std::string>(all));
  EXPECT_EQ(tok::char_to_byte(0x4E2D), std::nullopt);
  EXPECT_EQ(tok::unicode_to_bytes("\xC4\xA0hi"), std::optional<std::string>(" hi"));
  EXPECT_EQ(tok::unicode_to_bytes("\xE4\xB8\xAD"), std::nullopt);  // '中' is not a byte char
}

TEST(Utf8, LossyMatchesRust) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(tok::utf8_lossy("abc"), "abc");
  EXPECT_EQ(tok::utf8_lossy("\xE4\xB8" "a"), r + "a");        // truncated sequence: one U+FFFD
  EXPECT_EQ(tok::utf8_lossy("\xF0\x80\x80"), r + r + r);      // invalid second byte
  EXPECT_EQ(tok::utf8_lossy("\xED\xA0\x80"), r + r + r);      // surrogate
  EXPECT_EQ(tok::utf8_lossy("\xF4\x90\x80\x80"), r + r + r + r);  // > U+10FFFF
  EXPECT_EQ(tok::utf8_lossy("\xC0\xAF"), r + r);              // overlong
  EXPECT_EQ(tok::utf8_lossy("a\xF0\x9F\x98"), "a" + r);
  EXPECT_EQ(tok::utf8_lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_TRUE(tok::is_valid_utf8("\xE4\xB8\xAD"));
  EXPECT_FALSE(tok::is_valid_utf8("\xE4\xB8"));
}

TEST(Normalization, NfcComposes) {
  EXPECT_EQ(tok::normalize_unicode("e\xCC\x81", tok::NormalForm::NFC), "\xC3\xA9");
  EXPECT_EQ(tok::normalize_unicode("\xC3\xA9", tok::NormalForm::NFD), "e\xCC\x81");
  EXPECT_EQ(tok::normalize_unicode("\xEF\xAC\x81", tok::NormalForm::NFKC), "fi");  // 'ﬁ' ligature

  json j = test::bpe_tokenizer({{"\xC3\xA9", 0}, {"e", 1}, {"\xCC\x81", 2}}, json::array());
  EXPECT_EQ(make(j).encode("e\xCC\x81"), (std::vector<int32_t>{1, 2}));
  j["normalizer"] = {{"type", "NFC"}};
  Tokenizer t = make(j);
  EXPECT_EQ(t.encode("e\xCC\x81"), (std::vector<int32_t>{0}));
  EXPECT_EQ(t.encode("\xC3\xA9"), (std::vector<int32_t>{0}));
}

// Merges apply by rank (lowest first), leftmost first among equal ranks; stale pairs are skipped.
constexpr const char* kTinyBpe = R"({
  "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
  "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null,
  "decoder": null,
  "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": false,
            "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5, "aa": 6},
            "merges": ["b c", "a b", "a bc", "a a"]}
})";

TEST(Bpe, MergeOrderFollowsRank) {
  Tokenizer t = Tokenizer::from_json(kTinyBpe);
  EXPECT_EQ(t.encode("abc"), (std::vector<int32_t>{5}));     // (b c) first, then (a bc)
  EXPECT_EQ(t.encode("abab"), (std::vector<int32_t>{3, 3}));
  EXPECT_EQ(t.encode("aaa"), (std::vector<int32_t>{6, 0}));  // leftmost pair wins a tie
  EXPECT_EQ(t.encode("abcab"), (std::vector<int32_t>{5, 3}));
  EXPECT_EQ(t.encode("cab"), (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(t.encode("ab c  abc"), (std::vector<int32_t>{3, 2, 5}));
  EXPECT_EQ(t.encode("xa"), (std::vector<int32_t>{0}));      // no unk token: unknown chars vanish
  EXPECT_EQ(t.decode(std::vector<int32_t>{5, 3}), "abc ab");  // no decoder: tokens joined by ' '
  EXPECT_EQ(t.vocab_size(), 7);
  EXPECT_EQ(t.token_to_id("bc"), std::optional<int32_t>(4));
  EXPECT_EQ(t.token_to_id("cb"), std::nullopt);
  EXPECT_EQ(t.id_to_token(5), "abc");
  EXPECT_EQ(t.id_to_token(99), "");
}

TEST(Bpe, MergesAsPairsAndIgnoreMerges) {
  json j = json::parse(kTinyBpe);
  j["model"]["merges"] = json::array({json::array({"b", "c"}), json::array({"a", "b"})});
  EXPECT_EQ(make(j).encode("abc"), (std::vector<int32_t>{0, 4}));
  // ignore_merges: a word that is itself in the vocabulary is one token whatever the merges.
  j["model"]["merges"] = json::array();
  EXPECT_EQ(make(j).encode("abc"), (std::vector<int32_t>{0, 1, 2}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(make(j).encode("abc"), (std::vector<int32_t>{5}));
}

json llama_like(bool byte_fallback, bool fuse_unk) {
  json j = test::bpe_tokenizer(test::llama_vocab({"\xE2\x96\x81", "h", "i", "\xE2\x96\x81h",
                                                  "\xE2\x96\x81hi", "a"}),
                               json::array({"\xE2\x96\x81 h", "\xE2\x96\x81h i"}));
  j["model"]["unk_token"] = "<unk>";
  j["model"]["byte_fallback"] = byte_fallback;
  j["model"]["fuse_unk"] = fuse_unk;
  j["normalizer"] = json::parse(R"({"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "▁"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]})");
  j["decoder"] = test::llama_decoder();
  j["added_tokens"] = json::parse(R"([
      {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
      {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
      {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}])");
  j["post_processor"] = json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}})");
  return j;
}

constexpr int32_t kByte0 = 3;  // id of <0x00> in llama_vocab
constexpr int32_t kSpace = 259, kSpaceHi = 263, kA = 264;

TEST(Bpe, ByteFallbackForCharNotInVocab) {
  Tokenizer t = make(llama_like(true, true));
  // "hi é" -> "▁hi▁é"; 'é' is not in the vocabulary: its UTF-8 bytes C3 A9 become byte tokens.
  std::vector<int32_t> ids = t.encode("hi \xC3\xA9", false);
  EXPECT_EQ(ids, (std::vector<int32_t>{kSpaceHi, kSpace, kByte0 + 0xC3, kByte0 + 0xA9}));
  EXPECT_EQ(t.encode("hi \xC3\xA9", true).front(), 1);  // TemplateProcessing adds <s>
  EXPECT_EQ(t.decode(ids), "hi \xC3\xA9");
  EXPECT_EQ(t.bos_id(), std::optional<int32_t>(1));  // from the post-processor (no config)
}

TEST(Bpe, UnknownCharsUseUnkAndFuse) {
  EXPECT_EQ(make(llama_like(false, true)).encode("h\xC3\xA9\xC3\xA9", false),
            (std::vector<int32_t>{262, 0}));
  EXPECT_EQ(make(llama_like(false, false)).encode("h\xC3\xA9\xC3\xA9", false),
            (std::vector<int32_t>{262, 0, 0}));
}

TEST(Decode, InvalidUtf8ByteLevelIsLossy) {
  json j = test::bpe_tokenizer(test::byte_level_vocab(), json::array());
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  Tokenizer t = make(j);
  const std::string r = "\xEF\xBF\xBD";
  // In this vocabulary id == byte value.
  EXPECT_EQ(t.decode(std::vector<int32_t>{0xE4, 0xB8, 0xAD}), "\xE4\xB8\xAD");
  EXPECT_EQ(t.decode(std::vector<int32_t>{0xE4, 0xB8, 'a'}), r + "a");
  EXPECT_EQ(t.decode(std::vector<int32_t>{0xF0, 0x80, 0x80}), r + r + r);
  EXPECT_EQ(t.decode(std::vector<int32_t>{0xFF, 'b'}), r + "b");
  // Invalid UTF-8 input is encoded as if each invalid part were U+FFFD.
  EXPECT_EQ(t.encode("\xFF"), (std::vector<int32_t>{0xEF, 0xBF, 0xBD}));
  EXPECT_EQ(t.encode("a\xE4\xB8"), t.encode("a" + r));
}

TEST(Decode, InvalidUtf8ByteFallbackIsOneReplacementPerByte) {
  Tokenizer t = make(llama_like(true, true));
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(t.decode(std::vector<int32_t>{kByte0 + 0xE4, kByte0 + 0xB8, kA}), r + r + "a");
  EXPECT_EQ(t.decode(std::vector<int32_t>{kByte0 + 0xE4, kByte0 + 0xB8, kByte0 + 0xAD}), "\xE4\xB8\xAD");
  EXPECT_EQ(t.decode(std::vector<int32_t>{1, kSpaceHi, 2}), "<s> hi</s>");
  EXPECT_EQ(t.decode(std::vector<int32_t>{1, kSpaceHi, 2}, true), "hi");
}

json added_tokens_tokenizer() {
  json j = test::bpe_tokenizer({{"a", 0}, {"b", 1}, {" ", 2}, {"<", 3}, {"w", 4}, {">", 5}}, json::array());
  auto tok = [](int id, const char* content, bool lstrip, bool rstrip, bool single_word, bool special) {
    return json{{"id", id}, {"content", content}, {"single_word", single_word}, {"lstrip", lstrip},
                {"rstrip", rstrip}, {"normalized", false}, {"special", special}};
  };
  j["added_tokens"] = {tok(6, "<m>", true, false, false, true), tok(7, "<r>", false, true, false, false),
                       tok(8, "<w>", false, false, true, false)};
  return j;
}

TEST(AddedTokens, SplitsHonouringLstripRstripSingleWord) {
  Tokenizer t = make(added_tokens_tokenizer());
  EXPECT_EQ(t.encode("a <m> b"), (std::vector<int32_t>{0, 6, 2, 1}));      // lstrip eats " " before
  EXPECT_EQ(t.encode("a  <m>b"), (std::vector<int32_t>{0, 6, 1}));
  EXPECT_EQ(t.encode("a <r> b"), (std::vector<int32_t>{0, 2, 7, 1}));      // rstrip eats " " after
  EXPECT_EQ(t.encode("a<r>   b"), (std::vector<int32_t>{0, 7, 1}));
  EXPECT_EQ(t.encode("a <w> b"), (std::vector<int32_t>{0, 2, 8, 2, 1}));
  EXPECT_EQ(t.encode("a<w>b"), (std::vector<int32_t>{0, 3, 4, 5, 1}));     // single_word: not a word
  EXPECT_EQ(t.encode("<m><r><w>"), (std::vector<int32_t>{6, 7, 8}));
  EXPECT_TRUE(t.is_special(6));
  EXPECT_FALSE(t.is_special(7));
  EXPECT_FALSE(t.is_special(0));
  EXPECT_EQ(t.decode(std::vector<int32_t>{0, 6, 1}), "a <m> b");
  EXPECT_EQ(t.decode(std::vector<int32_t>{0, 6, 1}, true), "a b");
  EXPECT_EQ(t.vocab_size(), 9);
}

TEST(AddedTokens, IdsAreAssignedLikeHuggingFace) {
  // HF ignores the "id" field: known contents keep their id, new ones are numbered after the
  // model vocabulary in file order.
  json j = test::bpe_tokenizer({{"a", 0}, {"b", 1}, {"c", 2}}, json::array());
  auto tok = [](int id, const char* content) {
    return json{{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", false}, {"special", true}};
  };
  j["added_tokens"] = {tok(10, "<x>"), tok(1, "a"), tok(11, "<y>")};
  Tokenizer t = make(j);
  EXPECT_EQ(t.token_to_id("<x>"), std::optional<int32_t>(3));
  EXPECT_EQ(t.token_to_id("<y>"), std::optional<int32_t>(4));
  EXPECT_EQ(t.token_to_id("a"), std::optional<int32_t>(0));
  EXPECT_TRUE(t.is_special(0));
  EXPECT_EQ(t.encode("b<y>a"), (std::vector<int32_t>{1, 4, 0}));
  EXPECT_EQ(t.vocab_size(), 5);
}

TEST(AddedTokens, NormalizedTokensMatchNormalizedText) {
  // With the Llama normalizer, a normalized added token's pattern gets the "▁" prefix too.
  json j = llama_like(true, true);
  j["added_tokens"].push_back({{"id", 265}, {"content", "<x>"}, {"single_word", false}, {"lstrip", false},
                               {"rstrip", false}, {"normalized", true}, {"special", false}});
  Tokenizer t = make(j);
  EXPECT_EQ(t.encode("hi <x>", false), (std::vector<int32_t>{kSpaceHi, 265}));
  EXPECT_EQ(t.id_to_token(265), "\xE2\x96\x81<x>");  // HF returns the normalized form
  EXPECT_EQ(t.decode(std::vector<int32_t>{kSpaceHi, 265}), "hi <x>");
}

json metaspace_tokenizer(const char* scheme, bool split) {
  json j = test::bpe_tokenizer({{"\xE2\x96\x81", 0}, {"h", 1}, {"e", 2}, {"l", 3}, {"o", 4}, {"w", 5}, {"<t>", 6}},
                               json::array());
  j["added_tokens"] = {{{"id", 6}, {"content", "<t>"}, {"single_word", false}, {"lstrip", false},
                        {"rstrip", false}, {"normalized", false}, {"special", false}}};
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", scheme}, {"split", split}};
  j["decoder"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", scheme}, {"split", split}};
  return j;
}

TEST(PreTokenizer, MetaspacePrependSchemes) {
  Tokenizer first = make(metaspace_tokenizer("first", true));
  EXPECT_EQ(first.encode("hello"), (std::vector<int32_t>{0, 1, 2, 3, 3, 4}));
  EXPECT_EQ(first.encode("<t>hello"), (std::vector<int32_t>{6, 1, 2, 3, 3, 4}));  // not at start
  EXPECT_EQ(first.encode("he lo"), (std::vector<int32_t>{0, 1, 2, 0, 3, 4}));
  EXPECT_EQ(first.decode(std::vector<int32_t>{0, 1, 2, 0, 3, 4}), "he lo");
  Tokenizer always = make(metaspace_tokenizer("always", false));
  EXPECT_EQ(always.encode("<t>hello"), (std::vector<int32_t>{6, 0, 1, 2, 3, 3, 4}));
  Tokenizer never = make(metaspace_tokenizer("never", true));
  EXPECT_EQ(never.encode("hello"), (std::vector<int32_t>{1, 2, 3, 3, 4}));
  EXPECT_EQ(never.decode(std::vector<int32_t>{0, 1, 0, 5}), " h w");
}

TEST(PreTokenizer, SplitRegexUsesUnicodeClasses) {
  // Qwen's pattern isolates single digits and (case-insensitive) contractions, so "1 2" can
  // never merge while "' S" can.
  json vocab = test::byte_level_vocab();
  vocab["12"] = 256;
  vocab["'S"] = 257;
  json j = test::bpe_tokenizer(vocab, json::array({"1 2", "' S"}));
  j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]})");
  Tokenizer t = make(j);
  EXPECT_EQ(t.encode("It'S 12"), (std::vector<int32_t>{'I', 't', 257, ' ', '1', '2'}));
  j["pre_tokenizer"] = nullptr;
  EXPECT_EQ(make(j).encode("12"), (std::vector<int32_t>{256}));
}

}  // namespace
}  // namespace moe
