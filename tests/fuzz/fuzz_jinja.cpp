// libFuzzer target: serve/jinja (lexer, parser, renderer) on any bytes as a template, rendered
// with a small fixed chat context. Users pass --chat-template files and the server renders per
// request, so a hostile template must end in moe::jinja::Error: any other exception, a crash,
// a sanitizer report, a hang or runaway memory is a bug.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "serve/jinja/template.h"

namespace {

const nlohmann::ordered_json& context() {
  static const nlohmann::ordered_json ctx = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are helpful."},
      {"role": "user", "content": "Weather in Paris? <b>&</b> é 😀"},
      {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris", "n": 2, "x": 1.5, "ok": true, "none": null}}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "{\"t\": 21}"},
      {"role": "assistant", "reasoning_content": "think", "content": ["a", {"type": "text", "text": "b"}]}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
    "documents": null, "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": false
  })");
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::jinja::RenderOptions o;
  o.max_output_bytes = size_t(1) << 20;
  o.max_items = size_t(1) << 16;
  o.max_steps = 300'000;
  o.now = [] { return std::tm{}; };
  try {
    const moe::jinja::Template t(std::string(reinterpret_cast<const char*>(data), size));
    (void)t.render(context(), o);
  } catch (const moe::jinja::Error&) {
  } catch (...) {
    std::abort();  // anything else escaping is a bug
  }
  return 0;
}
