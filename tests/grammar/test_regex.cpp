// serve/grammar/regex: the regex subset -> grammar, through the byte-level recognizer; whole
// string and search semantics, the JSON-string-escaped mode, std::regex as a reference on ASCII,
// and the errors for what is not supported.
#include <gtest/gtest.h>

#include <random>
#include <regex>
#include <string>
#include <vector>

#include "serve/grammar/matcher.h"
#include "serve/grammar/regex.h"

namespace moe::grammar {
namespace {

Grammar with(std::string_view pattern, bool anchored, bool json) {
  RegexOptions o;
  o.anchored_start = o.anchored_end = anchored;
  o.json_string = json;
  Builder b;
  return b.build(b.rule("root", regex_expr(pattern, o)));
}
Grammar search(std::string_view pattern) { return with(pattern, false, false); }
Grammar json_whole(std::string_view pattern) { return with(pattern, true, true); }
Grammar json_search(std::string_view pattern) { return with(pattern, false, true); }

void expect_matches(std::string_view pattern, const std::vector<std::string>& yes, const std::vector<std::string>& no) {
  const Grammar g = regex_grammar(pattern);
  for (const auto& s : yes) EXPECT_TRUE(accepts(g, s)) << "/" << pattern << "/ should match '" << s << "'";
  for (const auto& s : no) EXPECT_FALSE(accepts(g, s)) << "/" << pattern << "/ should not match '" << s << "'";
}

void expect_error(std::string_view pattern, const std::vector<std::string>& parts) {
  try {
    (void)regex_grammar(pattern);
    ADD_FAILURE() << "no error for /" << pattern << "/";
  } catch (const GrammarError& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

TEST(Regex, Literals) {
  expect_matches("hello", {"hello"}, {"", "hell", "helloo", "Hello"});
  expect_matches("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80", {"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80"}, {"hello \xE2\x82\xAC \xF0\x9F\x98\x80"});
  expect_matches("", {""}, {"a"});
  expect_matches("a]}", {"a]}"}, {"a"});  // unbalanced closers are literals (ECMAScript)
  expect_matches("a{b", {"a{b"}, {"ab"});   // so is a brace that is not a quantifier
  expect_matches("x{,2}", {"", "x", "xx"}, {"xxx"});
}

TEST(Regex, Dot) {
  expect_matches("a.c", {"abc", "a.c", "a c", "a\tc", "a\xC3\xA9" "c", "a\xF0\x9F\x98\x80" "c"}, {"ac", "a\nc", "abbc"});
  // Line terminators ECMAScript's '.' stops at (Python's does not): never produced.
  expect_matches(".", {"\x0B"}, {"\r", "\xE2\x80\xA8", "\xE2\x80\xA9"});
  expect_matches(".*", {"", "anything at all", "\xE2\x82\xAC"}, {"line\nbreak"});
}

TEST(Regex, Classes) {
  expect_matches("[a-z]+", {"a", "xyz"}, {"", "A", "a1"});
  expect_matches("[^a-z]", {"A", "1", "\xC3\xA9", "\n"}, {"a", "q", ""});
  expect_matches("[A-Za-z0-9_-]{3}", {"a-Z", "___", "9_9"}, {"a.b", "ab"});
  expect_matches("[-a]", {"-", "a"}, {"b"});
  expect_matches("[a-]", {"-", "a"}, {"b"});
  expect_matches("[\\w-.]", {"a", "-", ".", "_"}, {"/"});  // \w then a literal '-'
  expect_matches("[\\]\\\\\\-^]", {"]", "\\", "-", "^"}, {"a"});
  expect_matches("[\\d\\s]", {"5", " ", "\t"}, {"a"});
  expect_matches("[^\\d]", {"a", " "}, {"5"});
  expect_matches("[\\D5]", {"a", "5"}, {"6"});
  expect_matches("[\xC3\xA0-\xC3\xBF]", {"\xC3\xA9", "\xC3\xA0"}, {"a", "\xC4\x80"});
  expect_matches("[\\u4e00-\\u9fff]+", {"\xE4\xB8\xAD\xE6\x96\x87"}, {"abc"});
  expect_matches("[^]", {"\n", "a"}, {""});
  expect_matches("[\\b]", {"\b"}, {"b"});
}

TEST(Regex, Escapes) {
  expect_matches("\\d\\d", {"12"}, {"1a", "1"});
  expect_matches("\\w+", {"abc_123"}, {"a-b", ""});
  expect_matches("\\s", {" ", "\t", "\n", "\r", "\xC2\xA0", "\xE3\x80\x80"}, {"a"});
  expect_matches("\\D\\W\\S", {"a.b"}, {"1.b", "aab", "a. "});
  // Only what ECMAScript and Python's re agree on: \d \w ASCII, \s without U+FEFF, \D no
  // Unicode digit, \W ASCII, \S no space of either.
  expect_matches("\\d", {"7"}, {"\xD9\xA3"});                                    // U+0663 ARABIC-INDIC THREE
  expect_matches("\\D", {"a", "\xC3\xA9", "\xE2\x82\xAC"}, {"7", "\xD9\xA3", "\xEF\xBC\x95"});  // U+FF15
  expect_matches("\\w", {"a", "_"}, {"\xC3\xA9"});
  expect_matches("\\W", {"-", " "}, {"\xC3\xA9", "\xE2\x82\xAC"});
  expect_matches("\\s", {"\xE2\x80\xA8"}, {"\xEF\xBB\xBF", "\x1C", "\xC2\x85"});
  expect_matches("\\S", {"a", "\xC3\xA9"}, {"\xEF\xBB\xBF", "\x1C", "\xC2\x85", " "});
  expect_matches("[^\\d\\s]", {"a"}, {"\xD9\xA3", "\xEF\xBB\xBF"});
  expect_matches("[\\W\\d]", {"-", "5"}, {"\xC3\xA9", "a"});
  expect_matches("\\n\\t\\r\\f\\v\\0", {std::string("\n\t\r\f\v\0", 6)}, {"ntrfv0"});
  expect_matches("\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$\\\\\\/", {".*+?()[]{}|^$\\/"}, {"a"});
  expect_matches("\\u00e9\\x41\\u{1F600}", {"\xC3\xA9" "A\xF0\x9F\x98\x80"}, {"eA"});
  expect_matches("\\uD83D\\uDE00", {"\xF0\x9F\x98\x80"}, {});  // a surrogate pair is one code point
  expect_matches("\\cJ", {"\n"}, {"J"});
}

TEST(Regex, GroupsAlternationQuantifiers) {
  expect_matches("(ab|cd){2,3}", {"abab", "abcdab", "cdcdcd"}, {"ab", "abababab", "abc"});
  expect_matches("(?:x|y)z", {"xz", "yz"}, {"z", "xyz"});
  expect_matches("a|b|", {"a", "b", ""}, {"ab"});
  expect_matches("x{3}", {"xxx"}, {"xx", "xxxx"});
  expect_matches("x{2,}", {"xx", "xxxxxxx"}, {"x"});
  expect_matches("x{0}", {""}, {"x"});
  expect_matches("colou?r", {"color", "colour"}, {"colouur"});
  expect_matches("a+?b*?c??d{1,2}?", {"ad", "aabbcdd"}, {"bd", "adcd"});  // lazy == greedy here
  expect_matches("((((a))))", {"a"}, {"aa"});
  expect_matches("()", {""}, {"a"});
  expect_matches("(a|)+b", {"b", "ab", "aaab"}, {"a"});
}

// Quantified expressions that match "" (Builder would see (a*)* as left recursion).
TEST(Regex, NullableRepetition) {
  expect_matches("(a*)*", {"", "a", "aaaa"}, {"b"});
  expect_matches("(a?b?)+", {"", "ab", "ba", "abba"}, {"c"});
  expect_matches("(a*|b)*c", {"c", "abac", "bbbc"}, {"ca"});
  expect_matches("()*x", {"x"}, {"xx"});
  expect_matches("(a?){2,}", {"", "a", "aaa"}, {"b"});
  expect_matches("(a?){3}", {"", "a", "aaa"}, {"aaaa"});
  expect_matches("((a*)(b*))*", {"", "abab", "bbaa"}, {"c"});
}

TEST(Regex, AnchorsWholeString) {
  expect_matches("^abc$", {"abc"}, {"xabc", "abcx"});
  expect_matches("^a|b$", {"a", "b"}, {"ab"});
}

TEST(Regex, SearchSemantics) {
  const Grammar g = search("abc");
  for (const char* s : {"abc", "xxabc", "abcyy", "x\nabc\ny"}) EXPECT_TRUE(accepts(g, s)) << s;
  for (const char* s : {"ab", "", "acb"}) EXPECT_FALSE(accepts(g, s)) << s;
  const Grammar start = search("^abc");
  EXPECT_TRUE(accepts(start, "abcxyz"));
  EXPECT_FALSE(accepts(start, "xabc"));
  const Grammar end = search("abc$");
  EXPECT_TRUE(accepts(end, "xyzabc"));
  EXPECT_FALSE(accepts(end, "abcx"));
  const Grammar both = search("^abc$");
  EXPECT_TRUE(accepts(both, "abc"));
  EXPECT_FALSE(accepts(both, "abcabc"));
  const Grammar branches = search("^a|b$");  // starts with a, or ends with b
  for (const char* s : {"a", "axx", "xxb", "b"}) EXPECT_TRUE(accepts(branches, s)) << s;
  for (const char* s : {"xa", "bx", ""}) EXPECT_FALSE(accepts(branches, s)) << s;
  EXPECT_TRUE(accepts(search(""), "anything"));
  RegexOptions only_start;
  only_start.anchored_end = false;
  Builder b;
  const Grammar g2 = b.build(b.rule("root", regex_expr("ab", only_start)));
  EXPECT_TRUE(accepts(g2, "abzz"));
  EXPECT_FALSE(accepts(g2, "zab"));
}

TEST(Regex, JsonStringMode) {
  // The expression produces the escaped text of matching strings.
  const Grammar quote = json_whole("a\"b\\\\c");
  EXPECT_TRUE(accepts(quote, "a\\\"b\\\\c"));
  EXPECT_FALSE(accepts(quote, "a\"b\\c"));
  const Grammar ws = json_whole("x\\sy");
  for (const char* s : {"x y", "x\\ny", "x\\ty", "x\\ry", "x\\u000by", "x\\fy", "x\xC2\xA0y"}) EXPECT_TRUE(accepts(ws, s)) << s;
  for (const char* s : {"x\ny", "x\ty", "x\\u000By", "x\\u0020y"}) EXPECT_FALSE(accepts(ws, s)) << s;
  const Grammar dot = json_whole(".");
  for (const char* s : {"a", "\\\"", "\\\\", "\\t", "\\b", "\\u0001", "\\u001f", "\xE2\x82\xAC"}) EXPECT_TRUE(accepts(dot, s)) << s;
  for (const char* s : {"\\n", "\"", "\\", "\t", "\\/", "\\u0041"}) EXPECT_FALSE(accepts(dot, s)) << s;
  const Grammar ctl = json_whole("[\\x00-\\x1f]");
  EXPECT_TRUE(accepts(ctl, "\\u0000"));
  EXPECT_TRUE(accepts(ctl, "\\u001b"));
  EXPECT_TRUE(accepts(ctl, "\\n"));
  EXPECT_FALSE(accepts(ctl, "\\u000a"));  // one canonical form per character
  EXPECT_FALSE(accepts(ctl, "\\u0020"));
  const Grammar neg = json_whole("[^a]+");
  EXPECT_TRUE(accepts(neg, "b\\\"\\n\\u0002"));
  EXPECT_FALSE(accepts(neg, "ba"));
  EXPECT_FALSE(accepts(neg, "\""));
  // Padding of an unanchored side takes any JSON string content, every escape form.
  const Grammar pad = json_search("^id-\\d+");
  EXPECT_TRUE(accepts(pad, "id-12\\u0041\\/\\\"x"));
  EXPECT_FALSE(accepts(pad, "xid-12"));
  EXPECT_FALSE(accepts(pad, "id-12\""));
  EXPECT_TRUE(accepts_prefix(pad, "id-"));
  EXPECT_FALSE(accepts_prefix(pad, "id-x"));
}

TEST(Regex, Errors) {
  expect_error("(a)\\1", {"backreference", "offset 3"});
  expect_error("\\k<x>", {"named backreference", "offset 0"});
  expect_error("a(?=b)", {"lookahead", "offset 1"});
  expect_error("a(?!b)", {"lookahead", "offset 1"});
  expect_error("(?<=a)b", {"lookbehind", "offset 0"});
  expect_error("(?<!a)b", {"lookbehind"});
  expect_error("(?<name>a)", {"named group"});
  expect_error("(?P<name>a)", {"named group"});
  expect_error("(?i)a", {"inline flags"});
  expect_error("(?>a)", {"atomic"});
  expect_error("\\bword", {"word boundary", "offset 0"});
  expect_error("a\\B", {"\\B", "offset 1"});
  expect_error("a*+", {"possessive", "offset 2"});
  expect_error("a{2}+", {"possessive"});
  expect_error("a**", {"quantifier"});
  expect_error("*a", {"nothing to repeat", "offset 0"});
  expect_error("a|?", {"nothing to repeat", "offset 2"});
  expect_error("{2}", {"nothing to repeat"});
  expect_error("\\p{L}", {"Unicode property"});
  expect_error("a^b", {"'^'", "offset 1"});
  expect_error("a$b", {"'$'", "offset 1"});
  expect_error("(a$)", {"'$'"});
  expect_error("(ab", {"unterminated group", "offset 0"});
  expect_error("ab)", {"unmatched ')'", "offset 2"});
  expect_error("[ab", {"unterminated character class"});
  expect_error("[z-a]", {"out of order", "offset 2"});
  expect_error("[]", {"matches nothing"});
  expect_error("[^\\s\\S]", {"matches nothing"});
  expect_error("\\q", {"unknown escape '\\q'"});
  expect_error("a\\", {"lone backslash"});
  expect_error("\\ud800", {"surrogate"});
  expect_error("\\x4", {"two hex digits"});
  expect_error("a{1,10001}", {"10000"});
  expect_error("a{3,2}", {"maximum is below the minimum"});
  expect_error(std::string(101, '(') + "a" + std::string(101, ')'), {"nest deeper than 100"});
  expect_error("\xC3", {"invalid UTF-8"});
  // Deep but allowed nesting, and the largest count, compile.
  EXPECT_TRUE(accepts(regex_grammar(std::string(100, '(') + "a" + std::string(100, ')')), "a"));
  EXPECT_TRUE(accepts(regex_grammar("a{10000}"), std::string(10000, 'a')));
}

// Against std::regex (ECMAScript) on ASCII: whole-string and search semantics agree on every
// string up to length 4 over a small alphabet. (No \r: std::regex's '.' also excludes it.)
TEST(Regex, AgreesWithStdRegex) {
  const std::vector<std::string> patterns = {
      "a*b",         "(ab|a)*",      "a{2,3}b?",       "[^a]c*",     "(a|b)+c",     "x?y?z?",   "\\d+\\.?\\d*",
      "(a|bc)*(c|)", "[a-c]{2}",     "(?:a|b|c){0,2}", ".b.",        "a(b(c)?)?",   "(a*b*)*c", "\\w\\W?",
      "^a.*c$",      "[\\s\\d]+",    "(a|b)*abb",      "c{1,}a{0,1}", "(.)(.)?",    "[^\\w\\s]b"};
  std::vector<std::string> texts{""};
  const std::string alphabet = "abc1 .\n";
  for (size_t len = 1, from = 0; len <= 4; ++len) {
    const size_t to = texts.size();
    for (size_t i = from; i < to; ++i)
      for (char c : alphabet) texts.push_back(texts[i] + c);
    from = to;
  }
  for (const auto& p : patterns) {
    const std::regex re(p, std::regex::ECMAScript);
    const Grammar whole = regex_grammar(p), find = search(p);
    for (const auto& t : texts) {
      ASSERT_EQ(accepts(whole, t), std::regex_match(t, re)) << "/" << p << "/ whole '" << t << "'";
      ASSERT_EQ(accepts(find, t), std::regex_search(t, re)) << "/" << p << "/ search '" << t << "'";
    }
  }
}

}  // namespace
}  // namespace moe::grammar
