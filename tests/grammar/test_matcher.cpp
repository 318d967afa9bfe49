// The matcher against brute force: at every step of random walks, the token mask must equal
// "the text so far plus this token is still a valid prefix" checked byte by byte from scratch.
#include <gtest/gtest.h>

#include <random>

#include "serve/grammar/constraint_spec.h"
#include "serve/grammar/grammar.h"
#include "serve/grammar/matcher.h"
#include "serve/grammar/token_vocab.h"
#include "serve/parsers/output_parser.h"

namespace moe::grammar {
namespace {

bool bit(const std::vector<uint64_t>& m, int32_t i) { return (m[size_t(i) >> 6] >> (i & 63)) & 1; }

// A small JSON-like grammar: value ::= string | number | array | "true"; strings with escapes.
Grammar json_like() {
  Builder b;
  RuleId value = b.declare("value");
  Expr ch = alt({chars({{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0x10FFFF}}), seq({lit("\\"), byte_set([] {
                                                                                   ByteSet s;
                                                                                   for (char c : std::string("\"\\/bfnrt")) s.set(uint8_t(c));
                                                                                   return s;
                                                                                 }())})});
  RuleId str = b.rule("string", seq({lit("\""), star(ch), lit("\"")}));
  ByteSet digit, digit19;
  digit.set_range('0', '9');
  digit19.set_range('1', '9');
  RuleId num = b.rule("number", seq({opt(lit("-")), alt({lit("0"), seq({byte_set(digit19), star(byte_set(digit))})}),
                                     opt(seq({lit("."), plus(byte_set(digit))}))}));
  RuleId arr = b.rule("array", seq({lit("["), opt(seq({ref(value), star(seq({lit(","), opt(lit(" ")), ref(value)}))})),
                                    lit("]")}));
  b.define(value, alt({ref(str), ref(num), ref(arr), lit("true")}));
  return b.build(value);
}

TEST(GrammarAccepts, WholeAndPrefix) {
  Grammar g = json_like();
  EXPECT_TRUE(accepts(g, R"(["a\"b", 12.5, [true, -0], "\u00e9"])") == false);  // \u is not in this grammar
  EXPECT_TRUE(accepts(g, R"(["a\"b", 12.5, [true, -0], "é"])"));
  EXPECT_TRUE(accepts(g, "[]"));
  EXPECT_FALSE(accepts(g, "[1,]"));
  EXPECT_FALSE(accepts(g, "01"));
  EXPECT_TRUE(accepts_prefix(g, "[1, [tr"));
  EXPECT_FALSE(accepts(g, "[1, [tr"));
  EXPECT_FALSE(accepts_prefix(g, "[1, [tx"));
  EXPECT_TRUE(accepts_prefix(g, "\"\xC3"));   // half of é
  EXPECT_FALSE(accepts_prefix(g, "\"\xC3\x41"));  // not a continuation byte
  EXPECT_FALSE(accepts_prefix(g, "\"\xFF"));
}

TEST(GrammarAccepts, DeepRepetitionKeepsOneStack) {
  Grammar g = json_like();
  std::string s = "\"" + std::string(100000, 'x') + "\"";
  EXPECT_TRUE(accepts(g, s));
}

TEST(GrammarBuild, RejectsLeftRecursionAndEmptyLanguages) {
  Builder b;
  RuleId e = b.declare("expr");
  b.define(e, alt({seq({ref(e), lit("+1")}), lit("1")}));
  try {
    b.build(e);
    FAIL() << "left recursion accepted";
  } catch (const GrammarError& err) {
    EXPECT_NE(std::string(err.what()).find("left recursion"), std::string::npos) << err.what();
  }
  Builder c;
  RuleId x = c.declare("x");
  c.define(x, seq({lit("a"), ref(x)}));
  EXPECT_THROW(c.build(x), GrammarError);
  Builder d;
  RuleId y = d.declare("y");
  EXPECT_THROW(d.build(y), GrammarError);  // never defined
}

TEST(GrammarBuild, RepeatsOfNullableItems) {
  // ("a"?)* , ("b"*)+ , ws* with ws ::= "" | " " | "\t": no left recursion, the same languages.
  Builder b;
  RuleId ws = b.rule("ws", alt({empty(), lit(" "), lit("\t")}));
  RuleId r = b.rule("root", seq({star(opt(lit("a"))), lit("|"), plus(star(lit("b"))), lit("|"), star(ref(ws)),
                                 lit("|"), repeat(seq({opt(lit("x")), opt(lit("y"))}), 0, 2)}));
  Grammar g = b.build(r);
  EXPECT_TRUE(accepts(g, "|||"));
  EXPECT_TRUE(accepts(g, "aaa|bbbb| \t  |xyx"));
  EXPECT_TRUE(accepts(g, "|b||yy"));
  EXPECT_TRUE(accepts(g, "|||xyxy"));
  EXPECT_FALSE(accepts(g, "|||xyxyx"));  // at most two (x? y?) groups
  EXPECT_FALSE(accepts(g, "|c||"));
  // A recursive nullable rule repeated.
  Builder c;
  RuleId n = c.declare("n");
  c.define(n, alt({empty(), seq({lit("("), ref(n), lit(")")})}));
  RuleId top = c.rule("top", star(ref(n)));
  Grammar h = c.build(top);
  EXPECT_TRUE(accepts(h, ""));
  EXPECT_TRUE(accepts(h, "()(())"));
  EXPECT_FALSE(accepts(h, "(()"));
}

TEST(GrammarReasoning, ThinkingIsFreeAndTheAnswerIsEnforced) {
  const Grammar answer = json_like();
  const Grammar optional = with_reasoning(answer, "<think>", "</think>", false, 2);
  EXPECT_TRUE(accepts(optional, "[1]"));                                   // no thinking at all
  EXPECT_TRUE(accepts(optional, "<think>x < y, </thin </think>\n\n[1]"));  // markers' prefixes inside
  EXPECT_TRUE(accepts(optional, "<think></think>[1]"));
  EXPECT_TRUE(accepts_prefix(optional, "<think>anything {not json"));
  EXPECT_FALSE(accepts(optional, "<think>x</think>\n\nnot json"));
  EXPECT_FALSE(accepts(optional, "<think>x</think>\n\n\n[1]"));  // at most 2 blanks after it
  EXPECT_FALSE(accepts(optional, "hello [1]"));
  EXPECT_FALSE(accepts(optional, "<think>x</think>[1]</think>"));
  const Grammar inside = with_reasoning(answer, "<think>", "</think>", true, 2);
  EXPECT_TRUE(accepts(inside, "still thinking</think>\n[true]"));
  EXPECT_FALSE(accepts(inside, "[true]"));  // the prompt opened the block: it must close
  const Grammar ws = with_leading_whitespace(answer, 3);
  EXPECT_TRUE(accepts(ws, " \n [1]"));
  EXPECT_FALSE(accepts(ws, "    [1]"));
}

TEST(GrammarToolCalls, HermesSyntaxWithEachToolsSchema) {
  const auto tools = nlohmann::ordered_json::parse(R"([
    {"type": "function", "function": {"name": "median", "parameters": {"type": "object",
      "properties": {"numbers": {"type": "array", "items": {"type": "number"}}}, "required": ["numbers"]}}},
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object",
      "properties": {"key": {"type": "string"}}, "required": ["key"]}}}])");
  const Grammar one = tool_call_grammar(tools, ToolSyntax::hermes, std::nullopt, false);
  EXPECT_TRUE(accepts(one, "<tool_call>\n{\"name\": \"median\", \"arguments\": {\"numbers\": [3, 1.5]}}\n</tool_call>"));
  EXPECT_TRUE(accepts(one, "<tool_call>\n{\"name\":\"lookup\",\"arguments\":{\"key\":\"x\"}}\n</tool_call>"));
  EXPECT_FALSE(accepts(one, "<tool_call>\n{\"name\": \"median\", \"arguments\": {\"key\": \"x\"}}\n</tool_call>"));
  EXPECT_FALSE(accepts(one, "<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call>"));
  const std::string call = "<tool_call>\n{\"name\": \"lookup\", \"arguments\": {\"key\": \"a\"}}\n</tool_call>";
  EXPECT_FALSE(accepts(one, call + "\n" + call));  // parallel calls not allowed
  const Grammar many = tool_call_grammar(tools, ToolSyntax::hermes, std::nullopt, true);
  EXPECT_TRUE(accepts(many, call + "\n" + call));
  const Grammar named = tool_call_grammar(tools, ToolSyntax::hermes, std::string("median"), false);
  EXPECT_FALSE(accepts(named, call));
  EXPECT_THROW(tool_call_grammar(tools, ToolSyntax::hermes, std::string("missing"), false), GrammarError);
}

TEST(GrammarToolCalls, Qwen3CoderXmlSyntaxReadsBackThroughItsParser) {
  const auto tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "edit",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "line": {"type": "integer"},
      "mode": {"enum": ["r", "w"]}, "flags": {"type": "array", "items": {"type": "string"}}},
      "required": ["path", "line", "mode"]}}}])");
  const Grammar g = tool_call_grammar(tools, ToolSyntax::qwen3_coder, std::nullopt, true);
  const std::string call =
      "<tool_call>\n<function=edit>\n<parameter=path>\nsrc/a b.py\nline two </param\n</parameter>\n"
      "<parameter=line>\n42\n</parameter>\n<parameter=mode>\nw\n</parameter>\n</function>\n</tool_call>";
  EXPECT_TRUE(accepts(g, call));
  EXPECT_TRUE(accepts(g, call + "\n" + call));
  std::string no_line = call;
  no_line.erase(no_line.find("<parameter=line>"), std::string("<parameter=line>\n42\n</parameter>\n").size());
  EXPECT_FALSE(accepts(g, no_line));  // required
  std::string bad_int = call;
  bad_int.replace(bad_int.find("42"), 2, "4x");
  EXPECT_FALSE(accepts(g, bad_int));
  std::string bad_enum = call;
  bad_enum.replace(bad_enum.find("\nw\n"), 3, "\nx\n");
  EXPECT_FALSE(accepts(g, bad_enum));
  // What the grammar allows, the parser reads back as the arguments.
  serve::ParserOptions po;
  po.family = "qwen3_coder";
  po.tools_enabled = true;
  po.tools = nlohmann::json::parse(tools.dump());
  const serve::ParsedMessage m = serve::parse_output(po, call);
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "edit");
  EXPECT_EQ(nlohmann::json::parse(m.tool_calls[0].arguments),
            nlohmann::json::parse(R"({"path": "src/a b.py\nline two </param", "line": 42, "mode": "w"})"));
  // Random documents through the mask parse into arguments of the right types.
  std::vector<std::string> words = {"<tool_call>", "\n", "<function=edit>", "<parameter=", "path", "line", "mode",
                                    "flags", ">", "</parameter>", "</function>", "</tool_call>", "a", "b c", "1", "42",
                                    "w", "r", "[\"", "\"]", "\",", "</", "param", "eter>", "\n</"};
  for (char c = ' '; c < 0x7F; ++c) words.push_back(std::string(1, c));  // every byte has a token, as in BPE
  words.push_back("");
  auto vocab = TokenVocab::create(words, {int32_t(words.size() - 1)});
  auto cg = CompiledGrammar::compile(g, vocab);
  std::mt19937 rng(3);
  std::vector<uint64_t> mask;
  for (int doc = 0; doc < 30; ++doc) {
    GrammarMatcher mt(cg);
    mask.assign(mt.mask_words(), 0);
    std::string text;
    for (int step = 0; step < 120 && !mt.finished(); ++step) {
      mt.fill_mask(mask);
      std::vector<int32_t> ok;
      for (int32_t t = 0; t < vocab->size(); ++t)
        if (bit(mask, t)) ok.push_back(t);
      ASSERT_FALSE(ok.empty());
      const int32_t t = ok[rng() % ok.size()];
      ASSERT_TRUE(mt.accept_token(t));
      if (vocab->is_end(t)) break;
      text += vocab->bytes(t);
    }
    if (!mt.can_finish()) continue;
    const serve::ParsedMessage pm = serve::parse_output(po, text);
    ASSERT_FALSE(pm.tool_calls.empty()) << text;
    for (const auto& tc : pm.tool_calls) {
      const auto a = nlohmann::json::parse(tc.arguments);
      EXPECT_TRUE(a["path"].is_string() && a["line"].is_number_integer() && (a["mode"] == "r" || a["mode"] == "w"))
          << text << " -> " << tc.arguments;
    }
  }
}

// Tokens of a byte-level vocabulary that straddle JSON syntax, as real ones do.
std::vector<std::string> test_vocab() {
  std::vector<std::string> v = {"\"", "\",", "\", \"", "\"]", "\"]]", "[\"", "[[", "[", "]", ",", ", ", " ",
                                "tr", "true", "ue", "t", "r", "u", "e", "1", "12", "0", "-", "-0", ".", ".5",
                                "5", "a", "ab", "abc", "\\", "\\\"", "\\n", "n", "\xC3", "\xA9", "\xC3\xA9",
                                "x\"", "\"x", "],", "], [", "true]", "1,", "}", "\xFF", "2.", "9"};
  return v;
}

void check_mask_against_brute_force(const Grammar& g, const std::vector<std::string>& words, uint32_t seed,
                                    int steps) {
  std::vector<std::string> bytes = words;
  bytes.push_back("");  // a special token: never allowed
  bytes.push_back("");  // the end token
  const int32_t end = int32_t(bytes.size() - 1);
  auto vocab = TokenVocab::create(bytes, {end});
  auto cg = CompiledGrammar::compile(g, vocab);
  GrammarMatcher m(cg);
  std::mt19937 rng(seed);
  std::string text;
  std::vector<uint64_t> mask(m.mask_words());
  for (int step = 0; step < steps; ++step) {
    m.fill_mask(mask);
    std::vector<int32_t> allowed;
    for (int32_t t = 0; t < vocab->size(); ++t) {
      const bool expect = t == end ? accepts(g, text)
                                   : !bytes[size_t(t)].empty() && accepts_prefix(g, text + bytes[size_t(t)]);
      ASSERT_EQ(bit(mask, t), expect) << "seed " << seed << " step " << step << " text '" << text << "' token '"
                                      << bytes[size_t(t)] << "'";
      if (expect) allowed.push_back(t);
    }
    ASSERT_FALSE(allowed.empty()) << "empty mask after '" << text << "'";
    const int32_t pick = allowed[rng() % allowed.size()];
    ASSERT_TRUE(m.accept_token(pick));
    if (pick == end) {
      EXPECT_TRUE(m.finished());
      return;
    }
    text += bytes[size_t(pick)];
  }
}

TEST(GrammarMatcher, MaskEqualsBruteForceOnRandomWalks) {
  Grammar g = json_like();
  for (uint32_t seed = 1; seed <= 40; ++seed) check_mask_against_brute_force(g, test_vocab(), seed, 60);
}

TEST(GrammarMatcher, RejectsDisallowedTokensAndKeepsState) {
  Grammar g = json_like();
  auto vocab = TokenVocab::create({"[", "1", "]", "x", ""}, {4});
  GrammarMatcher m(CompiledGrammar::compile(g, vocab));
  EXPECT_FALSE(m.accept_token(4));  // end before anything
  EXPECT_TRUE(m.accept_token(0));
  EXPECT_FALSE(m.accept_token(3));
  EXPECT_TRUE(m.accept_token(1));
  EXPECT_TRUE(m.accept_token(2));
  EXPECT_TRUE(m.can_finish());
  EXPECT_TRUE(m.finished());  // nothing may follow "]" at the root
  EXPECT_TRUE(m.accept_token(4));
}

TEST(GrammarMatcher, AmbiguousGrammarsKeepEveryParse) {
  // "a"* "a" "b"? : after "aa" the parse is ambiguous between stopping and going on.
  Builder b;
  RuleId r = b.rule("root", seq({star(lit("a")), lit("a"), opt(lit("b"))}));
  Grammar g = b.build(r);
  for (uint32_t seed = 1; seed <= 10; ++seed) check_mask_against_brute_force(g, {"a", "aa", "ab", "b", "ba"}, seed, 20);
}

TEST(TokenVocab, TrieIsPreorderWithSubtreeRanges) {
  auto v = TokenVocab::create({"ab", "a", "b", "abc", "ab", "", "ac"}, {});
  // nodes: a(1) ab(0,4) abc(3) ac(6) b(2)
  ASSERT_EQ(v->nodes(), 5u);
  EXPECT_EQ(v->node(0).byte, 'a');
  EXPECT_EQ(v->node(0).subtree_end, 4u);
  EXPECT_EQ(v->node(1).token_count, 2);
  EXPECT_EQ(v->tokens_at(1)[0], 0);
  EXPECT_EQ(v->tokens_at(1)[1], 4);
  EXPECT_EQ(v->node(2).depth, 3u);
  EXPECT_EQ(v->node(4).byte, 'b');
  EXPECT_EQ(v->node(4).subtree_end, 5u);
}

}  // namespace
}  // namespace moe::grammar
