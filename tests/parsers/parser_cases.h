// The outputs every family is tested on: what each model writes (as its chat template renders a
// past assistant turn) and the message it must parse to.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace moe::serve::test {

struct ExpectedCall {
  std::string name, arguments, id = {};  // id "" means the parser's own ("id0", "id1", ...)
};

struct ParserCase {
  std::string name, family, text;
  std::string content, reasoning;
  std::vector<ExpectedCall> calls;
  bool tools_enabled = true;
  bool starts_in_reasoning = false;
  bool arguments_are_json = true;  // false for a call cut short by the end of output
};

// The request's tools, for the schema-typed XML families.
inline nlohmann::json test_tools() {
  return nlohmann::json::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}, "detailed": {"type": "boolean"}}}}},
    {"type": "function", "function": {"name": "write_file", "parameters": {"type": "object", "properties": {
        "path": {"type": "string"}, "content": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "configure", "parameters": {"type": "object", "properties": {
        "ratio": {"type": "number"}, "tags": {"type": "array", "items": {"type": "string"}},
        "opts": {"type": "object"}, "limit": {"type": ["integer", "null"]},
        "label": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
  ])");
}

std::vector<ParserCase> hermes_cases();
std::vector<ParserCase> qwen3_coder_cases();
std::vector<ParserCase> glm45_cases();
std::vector<ParserCase> mistral_cases();
std::vector<ParserCase> deepseek_cases();
std::vector<ParserCase> kimi_cases();
std::vector<ParserCase> harmony_cases();

// Markers a content / reasoning delta must never end partway into (streamed, tools enabled).
std::vector<std::string> content_markers(const std::string& family);
std::vector<std::string> reasoning_markers(const std::string& family);

}  // namespace moe::serve::test
