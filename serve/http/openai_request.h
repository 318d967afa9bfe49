// OpenAI request bodies -> validated requests (pure: no model, no I/O). Every malformed or
// out-of-range field is an ApiError 400 naming the field, the way the OpenAI API words it, so a
// client sees which parameter to fix; nothing a client sends can crash the parser (it is
// fuzzed: tests/fuzz/fuzz_openai_request.cpp).
//
// Accepted and refused, on purpose:
//   - unknown fields are ignored (as local servers do); `functions`/`function_call` (the
//     deprecated form of tools) are refused, since ignoring them would silently disable calls;
//   - `n` and `best_of` must be 1;
//   - constraints: `response_format` json_object / json_schema (strict or not: both enforced),
//     `tool_choice` "required" or a named function (chat), and the extensions `grammar` (GBNF)
//     and `regex`, also under vLLM's names `guided_json`, `guided_grammar`, `guided_regex`;
//     one constraint per request (400 for two). The schema or grammar itself is compiled by the
//     handler (serve/grammar), which answers its errors with a 400 too;
//   - JSON null counts as absent for every optional field;
//   - `developer` messages are rendered as `system` (templates rarely know the role).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/http/api_error.h"
#include "serve/scheduler/request.h"

namespace moe::serve::http {

struct RequestLimits {
  int32_t vocab_size = 0;  // logit_bias ids and token prompts must be below it (0: unchecked)
  size_t max_stop = 16;    // stop strings per request (OpenAI allows 4)
  int max_top_logprobs = 20;
};

// What the output must follow.
struct OutputConstraint {
  enum class Kind { none, json_object, json_schema, grammar, regex, tool_calls };
  Kind kind = Kind::none;
  std::string text;                     // json_schema: the schema (JSON); grammar: GBNF; regex: the pattern
  std::string param;                    // the field it came from, for errors
  std::optional<std::string> function;  // tool_calls: the function tool_choice names
  bool parallel = true;                 // tool_calls: parallel_tool_calls
};

// Fields both endpoints share.
struct CommonRequest {
  std::string model;                  // as sent (any name is accepted; responses name ours)
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
  std::optional<int64_t> max_tokens;  // max_completion_tokens, else max_tokens; >= 1
  SamplingOptions sampling;
  std::vector<std::string> stop;      // non-empty strings
  OutputConstraint constraint;
};

struct ChatRequest : CommonRequest {
  // The messages as the chat template sees them: role (developer -> system), content a string
  // (text parts joined with "\n"; "" for an assistant message with only tool calls), and name,
  // tool_call_id, reasoning_content, tool_calls (arguments parsed into an object when they are
  // a JSON object's text) when given.
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;       // the request's tools (array, keys in the client's order), or null
  bool tools_enabled = false;         // tools given and tool_choice is not "none"
  bool logprobs = false;
  int top_logprobs = 0;
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();  // vLLM-style extra template variables
};

struct CompletionRequest : CommonRequest {
  bool token_prompt = false;          // the prompt came as token ids
  std::string prompt;                 // text prompt (token_prompt false)
  std::vector<int32_t> prompt_tokens; // token prompt (token_prompt true), never empty
  int logprobs = -1;                  // -1: none; else top alternatives per token (0..max_top_logprobs)
  bool echo = false;
};

// Parse errors, wrong types and ranges: ApiError 400.
ChatRequest parse_chat_request(std::string_view body, const RequestLimits& limits);
CompletionRequest parse_completion_request(std::string_view body, const RequestLimits& limits);

// JSON keys keep the client's order: templates write tools and arguments with `tojson`, and
// transformers keeps the order too.
// The body as a JSON object (400 when it is not JSON or not an object). Exposed for tests.
nlohmann::ordered_json parse_body(std::string_view body);

}  // namespace moe::serve::http
