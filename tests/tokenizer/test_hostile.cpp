// Hostile tokenizer files and texts: each ends in a one-line error saying what is wrong, or (for
// valid text) in the right tokens, never in a crash, a hang or quadratic time.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "runtime/tokenizer/regex.h"
#include "runtime/tokenizer/unicode.h"
#include "tests/tokenizer/test_util.h"

namespace moe {
namespace {

using nlohmann::json;

json valid() { return test::bpe_tokenizer({{"a", 0}, {"b", 1}, {"ab", 2}}, json::array({"a b"})); }

// The message of the std::runtime_error that loading `text` throws ("" if none).
std::string error_of(const std::string& text) {
  try {
    Tokenizer::from_json(text);
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  }
  return {};
}

// `levels` Sequences nested around `leaf` in the `section` component ("normalizers" etc.).
std::string nested(const char* section, const char* list, int levels, const std::string& leaf) {
  std::string open, close;
  for (int i = 0; i < levels; ++i) {
    open += std::string(R"({"type": "Sequence", ")") + list + "\": [";
    close += "]}";
  }
  json j = valid();
  std::string doc = j.dump();
  std::string key = std::string("\"") + section + "\":null";
  size_t at = doc.find(key);
  EXPECT_NE(at, std::string::npos);
  return doc.replace(at, key.size(), "\"" + std::string(section) + "\":" + open + leaf + close);
}

TEST(Hostile, DeepSequencesAreRefusedWithTheLimit) {
  struct Case {
    const char* section;
    const char* list;
    const char* leaf;
  };
  for (const Case& c : {Case{"normalizer", "normalizers", R"({"type": "NFC"})"},
                        Case{"pre_tokenizer", "pretokenizers", R"({"type": "Digits"})"},
                        Case{"decoder", "decoders", R"({"type": "Fuse"})"},
                        Case{"post_processor", "processors", R"({"type": "ByteLevel"})"}}) {
    EXPECT_EQ(error_of(nested(c.section, c.list, 64, c.leaf)), "") << c.section;
    std::string msg = error_of(nested(c.section, c.list, 65, c.leaf));
    EXPECT_NE(msg.find(c.section), std::string::npos) << msg;
    EXPECT_NE(msg.find("64"), std::string::npos) << msg;
    // 50,000 levels overflowed the stack (and 10,000 took a minute): the parser is never entered.
    msg = error_of(nested(c.section, c.list, 50000, c.leaf));
    EXPECT_NE(msg.find("nested more than 512"), std::string::npos) << msg;
  }
  EXPECT_NE(error_of(std::string(100000, '[')).find("512"), std::string::npos);
  // Brackets inside strings do not count.
  json j = valid();
  j["model"]["vocab"][std::string(2000, '[')] = 3;
  EXPECT_EQ(error_of(j.dump()), "");
}

TEST(Hostile, NonRegularAndHugeFilesAreRefused) {
  for (const char* dev : {"/dev/zero", "/dev/null"}) {
    try {
      Tokenizer::load(dev);
      ADD_FAILURE() << dev;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
    }
  }
  auto dir = std::filesystem::temp_directory_path() / ("moe_hostile_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto fifo = dir / "tokenizer.json";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THROW(Tokenizer::load(fifo), std::runtime_error);  // before: blocked in open()
  std::filesystem::remove(fifo);
  auto big = dir / "big.json";
  { std::ofstream(big) << "{}"; }
  std::filesystem::resize_file(big, (uintmax_t{256} << 20) + 1);  // sparse: costs no disk
  try {
    Tokenizer::load(big);
    ADD_FAILURE() << "no error for a 256 MiB file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("256 MiB"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(Hostile, JsonTypeErrorNamesTheField) {
  json j = valid();
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", "yes"}};
  std::string msg = error_of(j.dump());
  EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"add_prefix_space\""), std::string::npos) << msg;
  j = valid();
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{"a", 1}}}};
  EXPECT_NE(error_of(j.dump()).find("\"normalizers\" must be an array"), std::string::npos);
}

TEST(Hostile, PostProcessorIdsAreCheckedAgainstTheVocabulary) {
  json j = valid();
  j["post_processor"] = json::parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "special_tokens": {"<s>": {"id": "<s>", "ids": [999], "tokens": ["<s>"]}}})");
  std::string msg = error_of(j.dump());
  EXPECT_NE(msg.find("999"), std::string::npos) << msg;
  EXPECT_NE(msg.find("outside the vocabulary"), std::string::npos) << msg;
  j["post_processor"]["special_tokens"]["<s>"]["ids"] = {5000000000LL};  // was truncated to int32
  EXPECT_NE(error_of(j.dump()).find("32-bit"), std::string::npos);
  j["post_processor"] = json::parse(R"({"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 7]})");
  EXPECT_NE(error_of(j.dump()).find("id 7 is outside"), std::string::npos);
  j["post_processor"]["cls"] = {"<s>", 0};
  EXPECT_EQ(error_of(j.dump()), "");
}

// Canonical reordering of a long run of marks: utf8proc's adjacent swaps were quadratic (a
// megabyte took minutes); the order must stay the canonical (stable) one.
TEST(Hostile, LongUnsortedMarkRunNormalizes) {
  std::string s = "a";
  for (int i = 0; i < 3; ++i) s += "\xCC\x81\xCC\x96";  // U+0301 (ccc 230), U+0316 (ccc 220)
  EXPECT_EQ(tok::normalize_unicode(s, tok::NormalForm::NFC),
            "\xC3\xA1\xCC\x96\xCC\x96\xCC\x96\xCC\x81\xCC\x81");  // U+00E1, 220s, then 230s
  EXPECT_EQ(tok::normalize_unicode(s, tok::NormalForm::NFD),
            "a\xCC\x96\xCC\x96\xCC\x96\xCC\x81\xCC\x81\xCC\x81");
  std::string big = "a";
  for (int i = 0; i < 200000; ++i) big += "\xCC\x81\xCC\x96";
  EXPECT_EQ(tok::normalize_unicode(big, tok::NormalForm::NFC).size(), big.size() - 1);  // a + U+0301 -> U+00E1
}

// lstrip/rstrip added tokens rescanned a whitespace run from each match inside it (quadratic:
// HF tokenizers takes 247 s for 200k spaces). The expected ids are HF's.
TEST(Hostile, StrippedWhitespaceAddedTokenIsLinear) {
  json j = valid();
  j["added_tokens"] = json::parse(R"([
      {"id": 3, "content": " ", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": false},
      {"id": 4, "content": "x", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": false}])");
  Tokenizer t = Tokenizer::from_json(j.dump());
  using V = std::vector<int32_t>;
  EXPECT_EQ(t.encode("   a  b ", false), (V{3, 0, 3, 1, 3}));
  EXPECT_EQ(t.encode("ab   x  ab", false), (V{2, 3, 4, 2}));
  EXPECT_EQ(t.encode("a x x  x b", false), (V{0, 3, 4, 4, 4, 1}));
  EXPECT_EQ(t.encode(std::string(1 << 20, ' '), false), (V{3}));
}

// A run of invalid byte tokens decodes to U+FFFD, which the stream decoder held back as a
// possibly incomplete character, re-decoding the whole growing run at every push (quadratic).
TEST(Hostile, StreamOfInvalidByteTokensIsLinear) {
  auto path = test::source_dir() / "tests" / "fixtures" / "mixtral" / "tokenizer.json";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no mixtral fixture";
  Tokenizer t = Tokenizer::load(path);
  auto byte = t.token_to_id("<0x80>");
  ASSERT_TRUE(byte);
  std::vector<int32_t> ids(200000, *byte);
  StreamDecoder sd(t);
  std::string streamed;
  for (int32_t id : ids) streamed += sd.push(id);
  EXPECT_FALSE(streamed.empty());  // emitted along the way, not all at finish()
  streamed += sd.finish();
  EXPECT_EQ(streamed, t.decode(ids));
}

constexpr const char* kQwenRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// PCRE2's default match limit rejected ~10M spaces; windowed matching gives the same spans as a
// whole-text search.
TEST(Hostile, LongRunsMatchWithoutLimitErrors) {
  tok::Regex re(kQwenRegex);
  std::string spaces(10'000'000, ' ');
  auto m = re.find_all(spaces);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].end, spaces.size());
  // A run longer than the window, then a newline: the match must see past the window.
  std::string s = std::string(100000, ' ') + "\nx" + std::string(9000, ' ') + "y";
  auto n = re.find_all(s);
  ASSERT_EQ(n.size(), 4u);
  EXPECT_EQ(n[0].end, 100001u);          // \s*[\r\n]+
  EXPECT_EQ(n[2].end, 100002u + 8999u);  // \s+(?!\S) leaves one space to the word
  EXPECT_EQ(n[3].end, s.size());
}

// `\w*\d|.` rescans the rest of a word from every position, in every leftmost-first engine (HF
// tokenizers: 108 s for 120k letters). Short texts still match; long ones end in an error.
TEST(Hostile, QuadraticPatternFailsFastOnLongText) {
  tok::Regex re(R"(\w*\d|.)");
  EXPECT_EQ(re.find_all(std::string(3000, 'a') + "1").size(), 1u);
  EXPECT_EQ(re.find_all(std::string(3000, 'a')).size(), 3000u);
  try {
    re.find_all(std::string(400000, 'a'));
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("quadratically"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace moe
