// XML-style calls (Qwen3-Coder <parameter=...>, GLM <arg_key>/<arg_value>) carry each argument as
// text; the tool's JSON schema from the request says what it is. The arguments object is written
// as JSON while the parameters arrive: string values stream as they are generated (Qwen3-Coder
// writes whole files into them), others are converted when complete.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "serve/parsers/tool_stream.h"

namespace moe::serve::parsers {

// A function's parameter types from ParserOptions::tools (OpenAI format).
class ParamTypes {
 public:
  void load(const nlohmann::json& tools, std::string_view function);
  // Unknown parameters (no schema, or not in it) are strings, as the model wrote them.
  bool is_string(const std::string& param) const;
  // The value's JSON text: parsed as JSON when the schema wants a non-string and it parses
  // (Python-style True/False/None too), else the text as a JSON string.
  std::string convert(const std::string& param, std::string_view text) const;

 private:
  nlohmann::json props_;
};

// The arguments object's text, piece by piece: `{"a": 1` then `, "b": "x` ... then `}`.
class XmlArgsWriter {
 public:
  std::string open_param(std::string_view key, bool string_value);
  static std::string string_chunk(std::string_view s);  // JSON-escaped, no quotes
  std::string close() const { return first_ ? "{}" : "}"; }

 private:
  bool first_ = true;
};

// One parameter value up to the first of its end markers.
class XmlValueReader {
 public:
  // strip_newlines: one '\n' right after the opening tag and one before the end are markup
  // (Qwen3-Coder's template writes "<parameter=k>\nVALUE\n</parameter>").
  void begin(bool is_string, bool strip_newlines);
  // The index of the end marker found (pos_ left on it), or -1 when more text is needed.
  // String values go to the call as escaped fragments; others collect in text().
  int step(ToolStream& t, Emitter& e, Markers ends);
  const std::string& text() const { return text_; }

 private:
  void deliver(ToolStream& t, Emitter& e, std::string_view piece);
  bool string_ = true, strip_ = false, at_start_ = true;
  std::string text_;
};

// A parameter or function name inside a tag: trimmed, non-empty, no markup or line breaks.
bool valid_tag_name(std::string_view s);

}  // namespace moe::serve::parsers
