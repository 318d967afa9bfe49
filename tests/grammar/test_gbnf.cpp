// serve/grammar/gbnf: GBNF text -> Grammar, checked through the byte-level recognizer
// (accepts / accepts_prefix), and the error messages users see for broken grammar files.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "serve/grammar/gbnf.h"
#include "serve/grammar/matcher.h"

namespace moe::grammar {
namespace {

// "what" must name the problem and where it is.
void expect_error(std::string_view text, const std::vector<std::string>& parts, std::string_view root = "root") {
  try {
    (void)gbnf_grammar(text, root);
    ADD_FAILURE() << "no error for:\n" << text;
  } catch (const GrammarError& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

TEST(Gbnf, Arithmetic) {
  const Grammar g = gbnf_grammar(R"gbnf(
# integer arithmetic with precedence, no left recursion
root   ::= expr
expr   ::= term (("+" | "-") term)*
term   ::= factor (("*" | "/") factor)*
factor ::= number | "(" expr ")" | "-" factor
number ::= [0-9]+
)gbnf");
  for (const char* ok : {"1", "1+2*3", "(1+2)*3", "-(4/2)-7", "((((9))))", "12*34-56/78"})
    EXPECT_TRUE(accepts(g, ok)) << ok;
  for (const char* bad : {"", "1+", "()", "1++2", "(1", "1)", "a", "1 + 2"}) EXPECT_FALSE(accepts(g, bad)) << bad;
  EXPECT_TRUE(accepts_prefix(g, "(1+"));
  EXPECT_TRUE(accepts_prefix(g, ""));
  EXPECT_FALSE(accepts_prefix(g, "1+)"));
}

TEST(Gbnf, Json) {
  const Grammar g = gbnf_grammar(R"gbnf(root ::= ws value ws
value ::= object | array | string | number | ("true" | "false" | "null")
object ::=
  "{" ws (
    member
    ("," ws member)*   # more members
  )? "}"
member ::= string ws ":" ws value ws
array ::= "[" ws ( value ws ("," ws value ws)* )? "]"
string ::= "\"" (
    [^"\\\x00-\x1F]
  | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
  )* "\""
number ::= "-"? ("0" | [1-9] [0-9]*) ("." [0-9]+)? ([eE] [-+]? [0-9]+)?
ws ::= [ \t\n\r]*
)gbnf");
  for (const char* ok : {R"({"a": [1, 2.5e3, "x\u00e9"], "b": {"c": null}})", "[]", "{}", R"("é😀")", " true ",
                         "-0.5E-2", "[1,\n 2]", R"("\"\\\/")"})
    EXPECT_TRUE(accepts(g, ok)) << ok;
  for (const char* bad : {R"({"a" 1})", "[1,]", R"("\x")", "01", "{", R"("a)", "tru", "[1 2]", "\"\x01\""})
    EXPECT_FALSE(accepts(g, bad)) << bad;
  EXPECT_TRUE(accepts_prefix(g, R"({"key": [tr)"));
  EXPECT_FALSE(accepts_prefix(g, R"({"key" [)"));
}

TEST(Gbnf, List) {
  const Grammar g = gbnf_grammar("root ::= (\"- \" item)+\nitem ::= [^\\n]+ \"\\n\"\n");
  EXPECT_TRUE(accepts(g, "- a\n- bc d\n"));
  EXPECT_TRUE(accepts(g, "- ünïcode\n"));
  EXPECT_FALSE(accepts(g, "- a"));
  EXPECT_FALSE(accepts(g, "- \n"));
  EXPECT_FALSE(accepts(g, "* a\n"));
  EXPECT_FALSE(accepts(g, ""));
}

TEST(Gbnf, UnicodeClassesAndEscapes) {
  const Grammar g = gbnf_grammar(R"gbnf(root ::= hira | greek | "\U0001F600" | "<" . ">" | "\xE9" | [^\x00-\u07FF]
hira ::= [ぁ-ゟ]+
greek ::= [\u0391-\u03A9]{2}
)gbnf");
  for (const char* ok : {"ひらがな", "ΑΒ", "😀", "<é>", "<😀>", "<a>", "é", "中", "\xF0\x9F\x98\x80"})
    EXPECT_TRUE(accepts(g, ok)) << ok;
  for (const char* bad : {"ΑΒΓ", "Α", "a", "<ab>", "<>", "\xE9", "ß", "ひ😀"}) EXPECT_FALSE(accepts(g, bad)) << bad;
  // A lone lead byte of a valid character is a prefix; a bad continuation is not.
  EXPECT_TRUE(accepts_prefix(g, "\xE3"));
  EXPECT_FALSE(accepts_prefix(g, "\xE3\x41"));
}

TEST(Gbnf, LiteralAndClassEscapes) {
  const Grammar g = gbnf_grammar(R"gbnf(root ::= "\t\"\\\n\r\'" [\]\[\-\^] [-a] [b-] [^\]])gbnf");
  EXPECT_TRUE(accepts(g, "\t\"\\\n\r']-bx"));
  EXPECT_TRUE(accepts(g, "\t\"\\\n\r'[a-c"));
  EXPECT_TRUE(accepts(g, "\t\"\\\n\r'^-bx"));
  EXPECT_FALSE(accepts(g, "\t\"\\\n\r']-b]"));
  EXPECT_FALSE(accepts(g, "\t\"\\\n\r'a-bx"));
}

TEST(Gbnf, Repetitions) {
  const Grammar g = gbnf_grammar(R"gbnf(root ::= "a"{2} "b"{1,3} "c"{2,} "d"{0,1} ("e" "f"){ 0 , 2 })gbnf");
  for (const char* ok : {"aabcc", "aabbbccccc", "aabccd", "aabccef", "aabccdefef"}) EXPECT_TRUE(accepts(g, ok)) << ok;
  for (const char* bad : {"abcc", "aabbbbcc", "aabc", "aabccdd", "aabccefefef", "aabcce"})
    EXPECT_FALSE(accepts(g, bad)) << bad;
  const Grammar q = gbnf_grammar("root ::= \"x\"? \"y\"* \"z\"+");
  for (const char* ok : {"z", "xz", "yyyzz", "xyz"}) EXPECT_TRUE(accepts(q, ok)) << ok;
  for (const char* bad : {"", "xxz", "zy", "x"}) EXPECT_FALSE(accepts(q, bad)) << bad;
}

TEST(Gbnf, LayoutConventions) {
  // Blank lines, comments everywhere, CRLF, a newline after '|', a next line starting with '|',
  // groups over several lines, an empty alternative, the body on the line after '::='.
  const Grammar g = gbnf_grammar(
      "# header comment\r\n"
      "\r\n"
      "root ::= greeting space name   # trailing comment\r\n"
      "greeting ::= \"hi\" |\r\n"
      "  \"hello\"\r\n"
      "  | \"hey\"\r\n"
      "\r\n"
      "   # a comment line between continuations\r\n"
      "  | \"yo\"\r\n"
      "space ::= | \" \"\r\n"
      "name ::= (\r\n"
      "    [A-Z]   # capital\r\n"
      "    [a-z]*\r\n"
      "  )\r\n"
      "extra ::=\r\n"
      "  \"unused\"");
  for (const char* ok : {"hiBob", "hello Al", "hey Z", "yo Zed"}) EXPECT_TRUE(accepts(g, ok)) << ok;
  for (const char* bad : {"hi bob", "hola Bob", "hi  Bob"}) EXPECT_FALSE(accepts(g, bad)) << bad;
}

TEST(Gbnf, OtherRootAndNames) {
  const Grammar g = gbnf_grammar("start ::= my_rule-2 \"!\"\nmy_rule-2 ::= \"ok\"\n", "start");
  EXPECT_TRUE(accepts(g, "ok!"));
  EXPECT_FALSE(accepts(g, "ok"));
  expect_error("start ::= \"x\"\n", {"no rule named 'root'"});
  expect_error("", {"no rule named 'main'"}, "main");
}

TEST(Gbnf, RecursionAndEmptyLiteral) {
  const Grammar g = gbnf_grammar("root ::= \"(\" root \")\" | \"\"");
  for (const char* ok : {"", "()", "((()))"}) EXPECT_TRUE(accepts(g, ok)) << ok;
  for (const char* bad : {"(", "())", ")("}) EXPECT_FALSE(accepts(g, bad)) << bad;
}

TEST(Gbnf, ErrorUnterminatedString) {
  expect_error("root ::= \"abc", {"line 1, column 10", "unterminated string"});
  expect_error("root ::= \"abc\n  \"def\"", {"line 1, column 10", "unterminated string"});
  expect_error("root ::= [abc", {"line 1, column 10", "unterminated character class"});
}

TEST(Gbnf, ErrorUnknownRule) {
  expect_error("root ::= a\na ::= b c\nb ::= \"x\"\n", {"line 2, column 9", "rule 'c' is used but never defined"});
}

TEST(Gbnf, ErrorMissingDefinitionOperator) {
  expect_error("root \"x\"", {"line 1, column 6", "expected '::='", "'root'", "found '\"'"});
  expect_error("root ::= \"x\"\nitem = \"y\"", {"line 2, column 6", "expected '::='"});
  expect_error("root ::= \"x\"\n\"y\"", {"line 2, column 1", "expected a rule name"});
}

TEST(Gbnf, ErrorBadEscape) {
  expect_error(R"(root ::= "a\qb")", {"line 1, column 12", "unknown escape", "'q'"});
  expect_error(R"(root ::= [\z])", {"line 1, column 11", "unknown escape"});
  expect_error(R"(root ::= "\x4")", {"line 1, column 11", "2 hex digits"});
  expect_error(R"(root ::= "\u12G4")", {"4 hex digits"});
  expect_error(R"(root ::= "\U00110000")", {"beyond U+10FFFF"});
  expect_error(R"(root ::= "\uD800")", {"surrogate"});
}

TEST(Gbnf, ErrorLeftRecursion) {
  expect_error("root ::= expr\nexpr ::= expr \"+\" num | num\nnum ::= [0-9]+", {"left recursion", "expr"});
  expect_error("root ::= a\na ::= b? \"x\"\nb ::= a \"y\"", {"left recursion"});
}

TEST(Gbnf, ErrorStructure) {
  expect_error("root ::= (\"a\" | \"b\"", {"line 1, column 20", "expected ')'", "line 1, column 10"});
  expect_error("root ::= \"a\" )", {"line 1, column 14", "unbalanced ')'"});
  expect_error("root ::= * \"a\"", {"line 1, column 10", "nothing to repeat"});
  expect_error("root ::= \"a\" | ?", {"nothing to repeat"});
  expect_error("root ::= [z-a]", {"line 1, column 11", "reversed"});
  expect_error("root ::= []", {"empty"});
  expect_error("root ::= \"a\"{3,1}", {"line 1, column 13", "minimum exceeds the maximum"});
  expect_error("root ::= \"a\"{x}", {"expected a number"});
  expect_error("root ::= \"a\"{2", {"expected ',' or '}'"});
  expect_error("root ::= \"a\"{999999999999}", {"over the limit"});
  expect_error("root ::= \"a\" @", {"line 1, column 14", "expected a symbol, '|' or the end of the line", "'@'"});
  expect_error("root ::= \"a\"\nroot ::= \"b\"", {"line 2, column 1", "defined twice", "line 1, column 1"});
  expect_error("root ::=\nnext ::= \"x\"", {"line 2, column 1", "start of rule 'next'"});
  expect_error("root ::= \"a\" |\nnext ::= \"x\"", {"start of rule 'next'"});
  expect_error("root ::= \"\xC3(\"", {"line 1, column 11", "invalid UTF-8"});
}

TEST(Gbnf, Limits) {
  std::string big = "root ::= \"" + std::string(kGbnfMaxBytes, 'a') + "\"";
  expect_error(big, {"limit", "1 MiB"});
  std::string deep = "root ::= " + std::string(1000, '(') + "\"a\"" + std::string(1000, ')');
  expect_error(deep, {"nest deeper than"});
  std::string stacked = "root ::= \"a\"" + std::string(1000, '?');
  expect_error(stacked, {"nest deeper than"});
  // Nesting inside the limit is fine.
  std::string ok = "root ::= " + std::string(100, '(') + "\"a\"" + std::string(100, ')');
  EXPECT_TRUE(accepts(gbnf_grammar(ok), "a"));
  // Many large repetitions would unroll into billions of elements: refused up front.
  std::string wide = "root ::=";
  for (int i = 0; i < 20; ++i) wide += " \"a\"{100000}";
  expect_error(wide, {"add up to more than"});
}

}  // namespace
}  // namespace moe::grammar
