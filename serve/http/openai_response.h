// OpenAI response bodies and server-sent-event chunks (pure: no model, no I/O): what the
// `openai` Python client parses. Non-streamed `chat.completion` / `text_completion` objects,
// streamed `chat.completion.chunk` / `text_completion` chunks framed as `data: {json}\n\n`,
// usage, logprobs in the chat and the legacy completions shapes, error bodies, the model list.
// Text that is not valid UTF-8 (a token cut inside a character) is written with U+FFFD.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/http/api_error.h"
#include "serve/parsers/output_parser.h"
#include "serve/scheduler/request.h"

namespace moe::serve::http {

using ojson = nlohmann::ordered_json;

// prefix + n random characters [A-Za-z0-9] ("chatcmpl-", "cmpl-", "call_").
std::string random_id(std::string_view prefix, size_t n = 24);
int64_t unix_time();
// JSON text, invalid UTF-8 replaced (never throws on text from the model).
std::string dump(const ojson& j);
// `data: {json}\n\n`, and the stream's last event.
std::string sse_event(const ojson& j);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// {"error": {"message", "type", "param", "code"}}: param and code null when empty.
ojson error_json(const ApiError& e);

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};
ojson usage_json(const Usage& u);

// Text of a token id (the tokenizer's decode of that one id), for logprob alternatives.
using TokenText = std::function<std::string(int32_t)>;

// Chat: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}], `top` alternatives
// at most per token.
ojson chat_logprobs_content(const std::vector<TokenLogprob>& lps, int top, const TokenText& text);

// "tool_calls" when the message made calls and generation stopped on its own; else the
// scheduler's reason ("stop", "length"; "cancelled"/"error" never reach a client as such).
const char* chat_finish_reason(FinishReason r, bool has_tool_calls);
const char* completion_finish_reason(FinishReason r);

struct ChatCompletion {
  std::string id, model;
  int64_t created = 0;
  ParsedMessage message;
  const char* finish_reason = "stop";
  Usage usage;
  std::optional<ojson> logprobs;  // {"content": [...]} when asked
};
ojson chat_completion_json(const ChatCompletion& c);

// One stream's chunks: the envelope (id, created, model) serialized once; each call builds the
// SSE event text of one chunk.
class ChatChunker {
 public:
  ChatChunker(std::string_view id, int64_t created, std::string_view model);
  std::string role();  // delta {role: "assistant", content: ""}
  // content / reasoning_content / tool_calls; "" when the delta is empty and there are no logprobs.
  std::string delta(const OutputDelta& d, const ojson* logprobs = nullptr);
  std::string finish(const char* reason);      // empty delta, finish_reason set
  std::string usage(const Usage& u) const;     // choices [] and usage

 private:
  std::string chunk(const ojson& delta, const ojson* logprobs, const char* finish) const;
  std::string head_;  // `data: {"id":...,"model":...,"choices":[`
  std::string id_, model_;
  int64_t created_;
};

// Legacy completions logprobs: {tokens, token_logprobs, top_logprobs, text_offset}; offsets
// count characters from `offset0` (the text before these tokens). A token without a logprob
// (the echoed prompt's first) has null token_logprobs and top_logprobs entries.
struct CompletionLogprobs {
  ojson tokens = ojson::array(), token_logprobs = ojson::array(), top_logprobs = ojson::array(),
        text_offset = ojson::array();
  int64_t offset = 0;  // characters so far
  void add(const TokenLogprob& t, int top, const TokenText& text, bool has_logprob = true);
  ojson json() const;
  void clear_tokens();  // after a streamed chunk took them (offset stays)
};

struct TextCompletion {
  std::string id, model, text;
  int64_t created = 0;
  const char* finish_reason = "stop";
  Usage usage;
  std::optional<ojson> logprobs;
};
ojson text_completion_json(const TextCompletion& c);
// A streamed text_completion chunk (finish null unless given) and the usage-only chunk.
std::string text_completion_chunk(std::string_view id, int64_t created, std::string_view model, std::string_view text,
                                  const ojson* logprobs, const char* finish);
std::string text_completion_usage_chunk(std::string_view id, int64_t created, std::string_view model, const Usage& u);

ojson models_json(const std::string& model_id, int64_t created);

// Characters (code points) in UTF-8 text: bytes that do not continue a character.
int64_t utf8_length(std::string_view s);

}  // namespace moe::serve::http
