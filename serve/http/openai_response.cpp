#include "serve/http/openai_response.h"

#include <chrono>
#include <cmath>
#include <random>

namespace moe::serve::http {

namespace {

// -inf (a masked token) is not JSON: OpenAI reports such tokens as -9999.
double finite_logprob(float lp) { return std::isfinite(lp) ? double(lp) : -9999.0; }

ojson bytes_of(std::string_view s) {
  ojson b = ojson::array();
  for (const unsigned char c : s) b.push_back(int(c));
  return b;
}

ojson null_or(const std::string& s) { return s.empty() ? ojson(nullptr) : ojson(s); }

}  // namespace

std::string random_id(std::string_view prefix, size_t n) {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string s(prefix);
  std::uniform_int_distribution<size_t> pick(0, sizeof(kChars) - 2);
  for (size_t i = 0; i < n; ++i) s += kChars[pick(rng)];
  return s;
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

std::string sse_event(const ojson& j) { return "data: " + dump(j) + "\n\n"; }

ojson error_json(const ApiError& e) {
  return {{"error", {{"message", e.what()}, {"type", e.type}, {"param", null_or(e.param)}, {"code", null_or(e.code)}}}};
}

ojson usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

ojson chat_logprobs_content(const std::vector<TokenLogprob>& lps, int top, const TokenText& text) {
  ojson out = ojson::array();
  for (const TokenLogprob& t : lps) {
    ojson alts = ojson::array();
    for (size_t i = 0; i < t.top.size() && int(i) < top; ++i) {
      const std::string s = text ? text(t.top[i].first) : std::string();
      alts.push_back({{"token", s}, {"logprob", finite_logprob(t.top[i].second)}, {"bytes", bytes_of(s)}});
    }
    out.push_back({{"token", t.text},
                   {"logprob", finite_logprob(t.logprob)},
                   {"bytes", bytes_of(t.text)},
                   {"top_logprobs", std::move(alts)}});
  }
  return out;
}

const char* chat_finish_reason(FinishReason r, bool has_tool_calls) {
  if (r == FinishReason::length) return "length";
  return has_tool_calls ? "tool_calls" : "stop";
}

const char* completion_finish_reason(FinishReason r) { return r == FinishReason::length ? "length" : "stop"; }

namespace {

ojson tool_calls_json(const std::vector<ToolCall>& calls) {
  ojson a = ojson::array();
  for (const ToolCall& c : calls)
    a.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  return a;
}

}  // namespace

ojson chat_completion_json(const ChatCompletion& c) {
  ojson msg = {{"role", "assistant"}};
  // OpenAI sends content null for a message that is only tool calls.
  msg["content"] = c.message.content.empty() && !c.message.tool_calls.empty() ? ojson(nullptr) : ojson(c.message.content);
  if (!c.message.reasoning.empty()) msg["reasoning_content"] = c.message.reasoning;
  if (!c.message.tool_calls.empty()) msg["tool_calls"] = tool_calls_json(c.message.tool_calls);
  ojson choice = {{"index", 0}, {"message", std::move(msg)}};
  choice["logprobs"] = c.logprobs ? *c.logprobs : ojson(nullptr);
  choice["finish_reason"] = c.finish_reason;
  return {{"id", c.id},
          {"object", "chat.completion"},
          {"created", c.created},
          {"model", c.model},
          {"choices", ojson::array({std::move(choice)})},
          {"usage", usage_json(c.usage)}};
}

ChatChunker::ChatChunker(std::string_view id, int64_t created, std::string_view model)
    : id_(id), model_(model), created_(created) {
  ojson env = {{"id", id_}, {"object", "chat.completion.chunk"}, {"created", created_}, {"model", model_}};
  head_ = dump(env);
  head_.pop_back();  // the closing brace: choices follow
  head_ = "data: " + head_ + ",\"choices\":[";
}

std::string ChatChunker::chunk(const ojson& delta, const ojson* logprobs, const char* finish) const {
  ojson choice = {{"index", 0}, {"delta", delta}};
  choice["logprobs"] = logprobs ? *logprobs : ojson(nullptr);
  choice["finish_reason"] = finish ? ojson(finish) : ojson(nullptr);
  std::string s = head_;
  s += dump(choice);
  s += "]}\n\n";
  return s;
}

std::string ChatChunker::role() { return chunk({{"role", "assistant"}, {"content", ""}}, nullptr, nullptr); }

std::string ChatChunker::delta(const OutputDelta& d, const ojson* logprobs) {
  if (d.empty() && !logprobs) return {};
  ojson delta = ojson::object();
  if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
  if (!d.content.empty()) delta["content"] = d.content;
  if (!d.tool_calls.empty()) {
    ojson calls = ojson::array();
    for (const ToolCallDelta& t : d.tool_calls) {
      ojson c = {{"index", t.index}};
      if (!t.id.empty() || !t.name.empty()) {  // the call's first delta
        c["id"] = t.id;
        c["type"] = "function";
        c["function"] = {{"name", t.name}, {"arguments", t.arguments}};
      } else {
        c["function"] = {{"arguments", t.arguments}};
      }
      calls.push_back(std::move(c));
    }
    delta["tool_calls"] = std::move(calls);
  }
  return chunk(delta, logprobs, nullptr);
}

std::string ChatChunker::finish(const char* reason) { return chunk(ojson::object(), nullptr, reason); }

std::string ChatChunker::usage(const Usage& u) const {
  return "data: " + dump({{"id", id_},
                          {"object", "chat.completion.chunk"},
                          {"created", created_},
                          {"model", model_},
                          {"choices", ojson::array()},
                          {"usage", usage_json(u)}}) +
         "\n\n";
}

int64_t utf8_length(std::string_view s) {
  int64_t n = 0;
  for (const unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

void CompletionLogprobs::add(const TokenLogprob& t, int top, const TokenText& text, bool has_logprob) {
  tokens.push_back(t.text);
  text_offset.push_back(offset);
  offset += utf8_length(t.text);
  if (!has_logprob) {
    token_logprobs.push_back(nullptr);
    top_logprobs.push_back(nullptr);
    return;
  }
  token_logprobs.push_back(finite_logprob(t.logprob));
  ojson alts = ojson::object();
  for (size_t i = 0; i < t.top.size() && int(i) < top; ++i) {
    const std::string s = text ? text(t.top[i].first) : std::string();
    if (!alts.contains(s)) alts[s] = finite_logprob(t.top[i].second);  // distinct ids may share a text
  }
  top_logprobs.push_back(std::move(alts));
}

ojson CompletionLogprobs::json() const {
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs}, {"text_offset", text_offset}};
}

void CompletionLogprobs::clear_tokens() {
  tokens = ojson::array();
  token_logprobs = ojson::array();
  top_logprobs = ojson::array();
  text_offset = ojson::array();
}

ojson text_completion_json(const TextCompletion& c) {
  ojson choice = {{"text", c.text}, {"index", 0}};
  choice["logprobs"] = c.logprobs ? *c.logprobs : ojson(nullptr);
  choice["finish_reason"] = c.finish_reason;
  return {{"id", c.id},
          {"object", "text_completion"},
          {"created", c.created},
          {"model", c.model},
          {"choices", ojson::array({std::move(choice)})},
          {"usage", usage_json(c.usage)}};
}

std::string text_completion_chunk(std::string_view id, int64_t created, std::string_view model, std::string_view text,
                                  const ojson* logprobs, const char* finish) {
  ojson choice = {{"text", text}, {"index", 0}};
  choice["logprobs"] = logprobs ? *logprobs : ojson(nullptr);
  choice["finish_reason"] = finish ? ojson(finish) : ojson(nullptr);
  return sse_event({{"id", id},
                    {"object", "text_completion"},
                    {"created", created},
                    {"model", model},
                    {"choices", ojson::array({std::move(choice)})}});
}

std::string text_completion_usage_chunk(std::string_view id, int64_t created, std::string_view model, const Usage& u) {
  return sse_event({{"id", id},
                    {"object", "text_completion"},
                    {"created", created},
                    {"model", model},
                    {"choices", ojson::array()},
                    {"usage", usage_json(u)}});
}

ojson models_json(const std::string& model_id, int64_t created) {
  return {{"object", "list"},
          {"data", ojson::array({{{"id", model_id}, {"object", "model"}, {"created", created}, {"owned_by", "moe"}}})}};
}

}  // namespace moe::serve::http
