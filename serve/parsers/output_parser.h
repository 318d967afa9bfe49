// Model output -> OpenAI message parts. A model writes its thinking, its answer and its tool
// calls as plain text in a family-specific syntax (Hermes <tool_call>{json}</tool_call>,
// Qwen3-Coder <function=...> XML, Mistral [TOOL_CALLS], DeepSeek-V3.1, GLM-4.5/4.6, Kimi-K2,
// gpt-oss harmony). A parser turns the streamed text into the deltas an OpenAI client expects:
// content, reasoning_content and tool calls keyed by index, with id and name sent once and the
// arguments as fragments. Text that only looks like a call (bad JSON, unknown syntax) is passed
// through as content. Used by the server (streamed and not) and by batch jobs.
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace moe::serve {

struct ToolCallDelta {
  int index = 0;          // position of the call among this message's tool calls
  std::string id;         // on the call's first delta only
  std::string name;       // on the call's first delta only
  std::string arguments;  // a fragment of the arguments' JSON text
};

struct OutputDelta {
  std::string content;
  std::string reasoning;
  std::vector<ToolCallDelta> tool_calls;
  bool empty() const { return content.empty() && reasoning.empty() && tool_calls.empty(); }
};

struct ToolCall {
  std::string id, name, arguments;  // arguments: a JSON object's text
};

struct ParserOptions {
  // "none", "hermes", "qwen3_coder", "mistral", "deepseek_v31", "glm45", "kimi_k2", "harmony"
  std::string family = "none";
  bool tools_enabled = false;        // the request gave tools and tool_choice is not "none"
  bool starts_in_reasoning = false;  // the rendered prompt ends inside a thinking block
  nlohmann::json tools;              // the request's tools: parameter types for XML-style calls
  std::function<std::string()> make_id;  // tool-call ids; default "call_" + 24 random characters
};

class OutputParser {
 public:
  virtual ~OutputParser() = default;
  // The next piece of decoded text (whole UTF-8 characters; stop tokens are not included).
  // Text that may still turn out to be markup is held back until it is decided.
  virtual OutputDelta feed(std::string_view text) = 0;
  // End of generation: everything held back, as whatever it turned out to be.
  virtual OutputDelta finish() = 0;
};

// Throws std::invalid_argument for an unknown family (the message lists the known ones).
std::unique_ptr<OutputParser> make_output_parser(const ParserOptions& o);
std::vector<std::string> output_parser_families();
// The family a chat template writes tool calls in ("none" when it writes none we know).
std::string detect_parser_family(std::string_view chat_template);
// Whether a rendered prompt ends inside a thinking block ("<think>", Mistral's "[THINK]"), as
// DeepSeek-V3.1/R1 and Qwen3-Thinking-2507 generation prompts do: ParserOptions::starts_in_reasoning.
bool prompt_ends_in_reasoning(std::string_view rendered_prompt, std::string_view family);

// A whole output at once (non-streamed responses, batch jobs): the deltas merged.
struct ParsedMessage {
  std::string content, reasoning;
  std::vector<ToolCall> tool_calls;
};
ParsedMessage parse_output(const ParserOptions& o, std::string_view text);
// Merges a delta into a message (what a client does with the stream).
void merge_delta(ParsedMessage& m, const OutputDelta& d);

}  // namespace moe::serve
