// serve/parsers: the factory, detection from real chat templates, merging, ids, and the shared
// pieces (the incremental JSON scanner, the marker finder).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "parsers/parser_test_util.h"
#include "serve/parsers/json_scanner.h"
#include "serve/parsers/stream_text.h"

namespace moe::serve::test {
namespace {

namespace fs = std::filesystem;

TEST(OutputParserFactory, KnowsItsFamilies) {
  const std::vector<std::string> families = output_parser_families();
  EXPECT_EQ(families.size(), 8u);
  for (const std::string& f : families) {
    ParserOptions o;
    o.family = f;
    o.tools_enabled = true;
    EXPECT_NO_THROW((void)make_output_parser(o)) << f;
  }
}

TEST(OutputParserFactory, UnknownFamilyListsTheKnownOnes) {
  ParserOptions o;
  o.family = "llama3_json";
  try {
    (void)make_output_parser(o);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("llama3_json"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("hermes"), std::string::npos);
  }
}

TEST(OutputParserIds, DefaultIdsAreOpenAIStyle) {
  ParserOptions o;
  o.family = "hermes";
  o.tools_enabled = true;
  const std::string two = "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n"
                          "<tool_call>\n{\"name\": \"b\", \"arguments\": {}}\n</tool_call>";
  const ParsedMessage m = parse_output(o, two);
  ASSERT_EQ(m.tool_calls.size(), 2u);
  const std::regex id("call_[A-Za-z0-9]{24}");
  EXPECT_TRUE(std::regex_match(m.tool_calls[0].id, id)) << m.tool_calls[0].id;
  EXPECT_TRUE(std::regex_match(m.tool_calls[1].id, id)) << m.tool_calls[1].id;
  EXPECT_NE(m.tool_calls[0].id, m.tool_calls[1].id);
}

TEST(OutputParserIds, MistralIdsAreNineAlphanumerics) {
  // Mistral-Nemo's and Small-3.2's templates raise on any other id when the call is sent back.
  ParserOptions o;
  o.family = "mistral";
  o.tools_enabled = true;
  const ParsedMessage m = parse_output(o, "[TOOL_CALLS]f[ARGS]{}");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_TRUE(std::regex_match(m.tool_calls[0].id, std::regex("[A-Za-z0-9]{9}"))) << m.tool_calls[0].id;
}

TEST(OutputParserMerge, MergesDeltasByIndex) {
  ParsedMessage m;
  merge_delta(m, {"Hel", "th", {{0, "id0", "f", "{\"a\""}}});
  merge_delta(m, {"lo", "ink", {{0, "", "", ": 1}"}, {1, "id1", "g", "{}"}}});
  EXPECT_EQ(m.content, "Hello");
  EXPECT_EQ(m.reasoning, "think");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"a\": 1}");
  EXPECT_EQ(m.tool_calls[0].id, "id0");
  EXPECT_EQ(m.tool_calls[1].name, "g");
}

TEST(OutputParserStreaming, HoldsBackOnlyWhatMayBeMarkup) {
  ParserOptions o;
  o.family = "hermes";
  o.tools_enabled = true;
  auto p = make_output_parser(with_counter_ids(o));
  EXPECT_EQ(p->feed("a < b").content, "a < b");  // '<' followed by ' ' cannot start <tool_call>
  EXPECT_EQ(p->feed(" <tool").content, " ");
  EXPECT_EQ(p->feed("kit>").content, "<toolkit>");
  OutputDelta d = p->feed("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": ");
  ASSERT_EQ(d.tool_calls.size(), 1u);  // committed: id and name, and the arguments so far
  EXPECT_EQ(d.tool_calls[0].name, "f");
  EXPECT_EQ(d.tool_calls[0].arguments, "{\"x\": ");
  d = p->feed("12");
  ASSERT_EQ(d.tool_calls.size(), 1u);
  EXPECT_EQ(d.tool_calls[0].arguments, "12");
  EXPECT_TRUE(d.tool_calls[0].name.empty());
}

TEST(OutputParserStreaming, XmlStringValuesStream) {
  ParserOptions o;
  o.family = "qwen3_coder";
  o.tools_enabled = true;
  auto p = make_output_parser(with_counter_ids(o));
  OutputDelta d = p->feed("<tool_call>\n<function=write_file>\n<parameter=content>\nline one\n");
  ASSERT_EQ(d.tool_calls.size(), 1u);
  EXPECT_EQ(d.tool_calls[0].arguments, "{\"content\": \"line one");  // the last '\n' may be markup
  d = p->feed("line two\n</parameter>\n</function>\n</tool_call>");
  ASSERT_EQ(d.tool_calls.size(), 1u);
  EXPECT_EQ(d.tool_calls[0].arguments, "\\nline two\"}");
}

TEST(OutputParserStreaming, CutUtf8CharactersAreHeldBack) {
  ParserOptions o;
  o.family = "none";
  auto p = make_output_parser(o);
  const std::string s = "é";
  EXPECT_EQ(p->feed(s.substr(0, 1)).content, "");
  EXPECT_EQ(p->feed(s.substr(1)).content, "é");
}

TEST(OutputParserReasoning, PromptEndsInReasoning) {
  EXPECT_TRUE(prompt_ends_in_reasoning("<｜Assistant｜><think>", "deepseek_v31"));
  EXPECT_TRUE(prompt_ends_in_reasoning("<|im_start|>assistant\n<think>\n", "hermes"));
  EXPECT_FALSE(prompt_ends_in_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n", "hermes"));
  EXPECT_FALSE(prompt_ends_in_reasoning("<|start|>assistant", "harmony"));
  EXPECT_TRUE(prompt_ends_in_reasoning("[INST]hi[/INST][THINK]", "mistral"));
}

// The family each real template writes tool calls in.
const std::map<std::string, std::string> kExpectedFamily = {
    {"Apertus-8B-Instruct", "none"},
    {"Apriel-1.6-15b-Thinker-fixed", "none"},  // JSON list in <tool_calls>
    {"Bielik-11B-v3.0-Instruct", "hermes"},
    {"ByteDance-Seed-OSS", "none"},  // <seed:tool_call><function=...>
    {"Cohere2MoE", "none"},
    {"CohereForAI-c4ai-command-r-plus-tool_use", "none"},
    {"CohereForAI-c4ai-command-r7b-12-2024-tool_use", "none"},
    {"GLM-4.6", "glm45"},
    {"GLM-5.2", "glm45"},
    {"GigaChat3-10B-A1.8B", "none"},
    {"GigaChat3.1-10B-A1.8B", "none"},
    {"HuggingFaceTB-SmolLM3-3B", "none"},
    {"Kimi-K2-Instruct", "kimi_k2"},
    {"LFM2-8B-A1B", "none"},
    {"LFM2.5-Instruct", "none"},
    {"MiMo-VL", "hermes"},
    {"MiroThinker", "hermes"},
    {"Mistral-Small-3.2-24B-Instruct-2506", "mistral"},
    {"NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "qwen3_coder"},
    {"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", "hermes"},
    {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "hermes"},
    {"Qwen-QwQ-32B", "hermes"},
    {"Qwen-Qwen2.5-7B-Instruct", "hermes"},
    {"Qwen-Qwen3-0.6B", "hermes"},
    {"Qwen3-Coder", "qwen3_coder"},
    {"Reka-Edge", "hermes"},
    {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "deepseek_v31"},  // the V3/R1 form, also parsed
    {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "deepseek_v31"},
    {"deepseek-ai-DeepSeek-V3.1", "deepseek_v31"},
    {"fireworks-ai-llama-3-firefunction-v2", "none"},
    {"google-gemma-2-2b-it", "none"},
    {"google-gemma-4-31B-it-interleaved", "none"},
    {"google-gemma-4-31B-it", "none"},
    {"ibm-granite-granite-3.3-2B-Instruct", "none"},
    {"meetkai-functionary-medium-v3.1", "none"},  // <function=f>{json}</function>, no <tool_call>
    {"meetkai-functionary-medium-v3.2", "none"},
    {"meta-llama-Llama-3.1-8B-Instruct", "none"},
    {"meta-llama-Llama-3.2-3B-Instruct", "none"},
    {"meta-llama-Llama-3.3-70B-Instruct", "none"},
    {"microsoft-Phi-3.5-mini-instruct", "none"},
    {"mistralai-Ministral-3-14B-Reasoning-2512", "mistral"},
    {"mistralai-Mistral-Nemo-Instruct-2407", "mistral"},
    {"moonshotai-Kimi-K2", "kimi_k2"},
    {"openai-gpt-oss-120b", "harmony"},
    {"stepfun-ai-Step-3.5-Flash", "qwen3_coder"},
    {"unsloth-Apriel-1.5", "none"},  // JSON list in <tool_calls>
    {"unsloth-mistral-Devstral-Small-2507", "mistral"},
};

fs::path templates_dir() {
  if (const char* d = std::getenv("MOE_CHAT_TEMPLATES")) return d;  // e.g. a fresher copy
  return fs::path(MOE_SOURCE_DIR) / "tests" / "fixtures" / "chat_templates";
}

TEST(DetectParserFamily, EveryRealTemplate) {
  const fs::path dir = templates_dir();
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".jinja") continue;
    const std::string stem = entry.path().stem().string();
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    const auto want = kExpectedFamily.find(stem);
    ASSERT_NE(want, kExpectedFamily.end()) << stem << " has no expected family in this test";
    EXPECT_EQ(detect_parser_family(text.str()), want->second) << stem;
    ++n;
  }
  EXPECT_EQ(n, kExpectedFamily.size());
}

TEST(DetectParserFamily, EmptyTemplateIsNone) { EXPECT_EQ(detect_parser_family(""), "none"); }

using parsers::JsonScanner;

JsonScanner::Status scan_all(std::string_view s, size_t& consumed) {
  JsonScanner sc;
  JsonScanner::Status st;
  consumed = sc.feed(s, st);
  return st;
}

TEST(JsonScanner, ValidatesIncrementally) {
  size_t n = 0;
  EXPECT_EQ(scan_all(R"({"a": [1, -2.5e+3, true, null, "x\"\u00e9"], "b": {}})", n), JsonScanner::Status::done);
  EXPECT_EQ(scan_all(R"({"a": [1, 2)", n), JsonScanner::Status::more);
  EXPECT_EQ(scan_all(R"({"a": 01})", n), JsonScanner::Status::error);
  EXPECT_EQ(n, 7u);  // at the '1' after a leading zero
  EXPECT_EQ(scan_all(R"({"a" 1})", n), JsonScanner::Status::error);
  EXPECT_EQ(scan_all(R"({"a": tru})", n), JsonScanner::Status::error);
  EXPECT_EQ(scan_all(R"({"a": 1,})", n), JsonScanner::Status::error);
  EXPECT_EQ(scan_all("{\"a\": \"\x01\"}", n), JsonScanner::Status::error);
  EXPECT_EQ(scan_all(R"({"a": 1} trailing)", n), JsonScanner::Status::done);
  EXPECT_EQ(n, 8u);
  EXPECT_EQ(scan_all("42,", n), JsonScanner::Status::done);  // a number ends at the next byte
  EXPECT_EQ(n, 2u);
  // Byte by byte gives the same answer.
  const std::string doc = R"({"k": ["v", {"n": -0.5}], "t": false})";
  JsonScanner sc;
  JsonScanner::Status st = JsonScanner::Status::more;
  for (size_t i = 0; i < doc.size(); ++i) {
    EXPECT_EQ(sc.feed(doc.substr(i, 1), st), 1u);
    EXPECT_EQ(st, i + 1 == doc.size() ? JsonScanner::Status::done : JsonScanner::Status::more) << i;
  }
}

TEST(FindMarker, FullPartialAndNone) {
  using parsers::find_marker;
  auto h = find_marker("abc <tool_call> x", {"<tool_call>"});
  EXPECT_TRUE(h.full());
  EXPECT_EQ(h.pos, 4u);
  h = find_marker("abc <tool_c", {"<tool_call>"});
  EXPECT_TRUE(h.partial());
  EXPECT_EQ(h.pos, 4u);
  h = find_marker("abc <b> <", {"<tool_call>"});
  EXPECT_TRUE(h.partial());
  EXPECT_EQ(h.pos, 8u);
  EXPECT_TRUE(find_marker("abc <b>", {"<tool_call>"}).none());
  // A partial of one marker before a full one of another: wait for it.
  h = find_marker("<|tool_call<|tool_call_begin|>", {"<|tool_calls_section_begin|>", "<|tool_call_begin|>"});
  EXPECT_TRUE(h.full());
  EXPECT_EQ(h.pos, 11u);
}

}  // namespace
}  // namespace moe::serve::test
