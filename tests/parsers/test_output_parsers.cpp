// serve/parsers: every family's outputs parse to the expected message, and stream to the same
// message however the text is cut into pieces.
#include <nlohmann/json.hpp>

#include "parsers/parser_cases.h"
#include "parsers/parser_test_util.h"

namespace moe::serve::test {

std::vector<std::string> content_markers(const std::string& family) {
  if (family == "hermes" || family == "glm45") return {"<tool_call>"};
  if (family == "qwen3_coder") return {"<tool_call>", "<function="};
  if (family == "mistral") return {"[TOOL_CALLS]"};
  if (family == "deepseek_v31") return {"<｜tool▁calls▁begin｜>", "<｜tool▁call▁begin｜>"};
  if (family == "kimi_k2") return {"<|tool_calls_section_begin|>", "<|tool_call_begin|>"};
  if (family == "harmony") return {"<|start|>", "<|end|>", "<|channel|>", "<|call|>", "<|return|>"};
  return {};
}

std::vector<std::string> reasoning_markers(const std::string& family) {
  if (family == "mistral") return {"[/THINK]"};
  if (family == "harmony") return {"<|start|>", "<|end|>", "<|channel|>", "<|call|>", "<|return|>"};
  return {"</think>"};
}

namespace {

std::vector<ParserCase> all_cases() {
  std::vector<ParserCase> all;
  for (auto cases : {hermes_cases(), qwen3_coder_cases(), glm45_cases(), mistral_cases(), deepseek_cases(),
                     kimi_cases(), harmony_cases()})
    all.insert(all.end(), cases.begin(), cases.end());
  return all;
}

ParserOptions options_for(const ParserCase& c) {
  ParserOptions o;
  o.family = c.family;
  o.tools_enabled = c.tools_enabled;
  o.starts_in_reasoning = c.starts_in_reasoning;
  o.tools = test_tools();
  return o;
}

class OutputParserCase : public ::testing::TestWithParam<ParserCase> {};

TEST_P(OutputParserCase, ParsesWhole) {
  const ParserCase& c = GetParam();
  const ParsedMessage m = run_chunks(options_for(c), {c.text}).msg;
  EXPECT_EQ(m.content, c.content);
  EXPECT_EQ(m.reasoning, c.reasoning);
  ASSERT_EQ(m.tool_calls.size(), c.calls.size());
  for (size_t i = 0; i < c.calls.size(); ++i) {
    SCOPED_TRACE("call " + std::to_string(i));
    EXPECT_EQ(m.tool_calls[i].name, c.calls[i].name);
    EXPECT_EQ(m.tool_calls[i].arguments, c.calls[i].arguments);
    EXPECT_EQ(m.tool_calls[i].id, c.calls[i].id.empty() ? "id" + std::to_string(i) : c.calls[i].id);
    if (c.arguments_are_json) {
      EXPECT_TRUE(nlohmann::json::parse(m.tool_calls[i].arguments, nullptr, false).is_object())
          << m.tool_calls[i].arguments;
    }
  }
}

TEST_P(OutputParserCase, StreamsTheSame) {
  const ParserCase& c = GetParam();
  const bool tools = c.tools_enabled && c.family != "none";
  check_streaming(options_for(c), c.text, tools || c.family == "harmony" ? content_markers(c.family)
                                                                       : std::vector<std::string>{},
                  reasoning_markers(c.family));
}

// Every prefix, as if the output stopped there (max_tokens, a stop string): one-shot and byte by
// byte agree, and nothing is lost (a call that never committed is content again).
TEST_P(OutputParserCase, EveryPrefixStreamsTheSame) {
  const ParserCase& c = GetParam();
  for (size_t n = 0; n <= c.text.size(); ++n) {
    if (n < c.text.size() && (static_cast<unsigned char>(c.text[n]) & 0xC0) == 0x80) continue;
    const std::string prefix = c.text.substr(0, n);
    SCOPED_TRACE("prefix '" + prefix + "'");
    const ParsedMessage whole = run_chunks(options_for(c), {prefix}).msg;
    std::vector<std::string> bytes;
    for (char ch : prefix) bytes.emplace_back(1, ch);
    expect_same(run_chunks(options_for(c), bytes).msg, whole);
    if (HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, OutputParserCase, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<ParserCase>& i) {
                           return i.param.family + "_" + i.param.name;
                         });

}  // namespace
}  // namespace moe::serve::test
