// serve/http/openai_response + auth: the shapes the openai client parses, SSE framing, errors.
#include <gtest/gtest.h>

#include <string>

#include "serve/http/auth.h"
#include "serve/http/openai_response.h"

using namespace moe::serve;
using namespace moe::serve::http;
using nlohmann::json;

namespace {

// The JSON of one SSE event, checking the framing.
json event_json(const std::string& ev) {
  EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
  EXPECT_GE(ev.size(), 8u);
  EXPECT_EQ(ev.substr(ev.size() - 2), "\n\n") << ev;
  EXPECT_EQ(ev.find('\n'), ev.size() - 2) << "one line per event: " << ev;
  return json::parse(ev.substr(6, ev.size() - 8));
}

}  // namespace

TEST(OpenAIResponse, Ids) {
  const std::string id = random_id("chatcmpl-");
  EXPECT_EQ(id.size(), 9u + 24u);
  EXPECT_EQ(id.rfind("chatcmpl-", 0), 0u);
  EXPECT_NE(id, random_id("chatcmpl-"));
  for (char c : id.substr(9)) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)));
}

TEST(OpenAIResponse, ErrorJson) {
  json e = json::parse(dump(error_json(bad_request("bad temperature", "temperature"))));
  EXPECT_EQ(e["error"]["message"], "bad temperature");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "temperature");
  EXPECT_TRUE(e["error"]["code"].is_null());
  e = json::parse(dump(error_json(ApiError(429, "rate_limit_error", "queue full", "", "queue_full"))));
  EXPECT_TRUE(e["error"]["param"].is_null());
  EXPECT_EQ(e["error"]["code"], "queue_full");
}

TEST(OpenAIResponse, ChatCompletionShape) {
  ChatCompletion c;
  c.id = "chatcmpl-x";
  c.model = "tiny";
  c.created = 1700000000;
  c.message.content = "hello";
  c.message.reasoning = "think";
  c.finish_reason = "stop";
  c.usage = {10, 3, 4};
  json j = json::parse(dump(chat_completion_json(c)));
  EXPECT_EQ(j["id"], "chatcmpl-x");
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "tiny");
  ASSERT_EQ(j["choices"].size(), 1u);
  const json& ch = j["choices"][0];
  EXPECT_EQ(ch["index"], 0);
  EXPECT_EQ(ch["message"]["role"], "assistant");
  EXPECT_EQ(ch["message"]["content"], "hello");
  EXPECT_EQ(ch["message"]["reasoning_content"], "think");
  EXPECT_FALSE(ch["message"].contains("tool_calls"));
  EXPECT_TRUE(ch["logprobs"].is_null());
  EXPECT_EQ(ch["finish_reason"], "stop");
  EXPECT_EQ(j["usage"], json::parse(R"({"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,
                                        "prompt_tokens_details":{"cached_tokens":4}})"));

  c.message = {};
  c.message.tool_calls.push_back({"call_a", "get", R"({"x":1})"});
  c.finish_reason = chat_finish_reason(FinishReason::stop, true);
  j = json::parse(dump(chat_completion_json(c)));
  EXPECT_TRUE(j["choices"][0]["message"]["content"].is_null());
  EXPECT_FALSE(j["choices"][0]["message"].contains("reasoning_content"));
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"],
            json::parse(R"([{"id":"call_a","type":"function","function":{"name":"get","arguments":"{\"x\":1}"}}])"));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_STREQ(chat_finish_reason(FinishReason::length, true), "length");
  EXPECT_STREQ(chat_finish_reason(FinishReason::stop, false), "stop");
}

TEST(OpenAIResponse, ChatChunks) {
  ChatChunker ch("chatcmpl-s", 5, "tiny");
  json first = event_json(ch.role());
  EXPECT_EQ(first["id"], "chatcmpl-s");
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["created"], 5);
  EXPECT_EQ(first["model"], "tiny");
  EXPECT_EQ(first["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(first["choices"][0].contains("logprobs"));

  EXPECT_EQ(ch.delta(OutputDelta{}), "");
  OutputDelta d;
  d.content = "he said \"hi\"\n";
  json c = event_json(ch.delta(d));
  EXPECT_EQ(c["choices"][0]["delta"], json({{"content", "he said \"hi\"\n"}}));
  d = {};
  d.reasoning = "hmm";
  EXPECT_EQ(event_json(ch.delta(d))["choices"][0]["delta"], json({{"reasoning_content", "hmm"}}));

  d = {};
  d.tool_calls.push_back({0, "call_1", "get", "{\"a\""});
  json t = event_json(ch.delta(d));
  EXPECT_EQ(t["choices"][0]["delta"]["tool_calls"],
            json::parse(R"([{"index":0,"id":"call_1","type":"function","function":{"name":"get","arguments":"{\"a\""}}])"));
  d = {};
  d.tool_calls.push_back({0, "", "", ": 1}"});
  t = event_json(ch.delta(d));
  EXPECT_EQ(t["choices"][0]["delta"]["tool_calls"], json::parse(R"([{"index":0,"function":{"arguments":": 1}"}}])"));

  json f = event_json(ch.finish("tool_calls"));
  EXPECT_EQ(f["choices"][0]["delta"], json::object());
  EXPECT_EQ(f["choices"][0]["finish_reason"], "tool_calls");

  json u = event_json(ch.usage({7, 2, 0}));
  EXPECT_EQ(u["choices"], json::array());
  EXPECT_EQ(u["usage"]["total_tokens"], 9);
  EXPECT_EQ(u["object"], "chat.completion.chunk");
  EXPECT_EQ(std::string(kSseDone), "data: [DONE]\n\n");
}

TEST(OpenAIResponse, InvalidUtf8IsReplacedNotThrown) {
  ChatChunker ch("id", 1, "m");
  OutputDelta d;
  d.content = "a\xe2\x82";  // a cut euro sign
  json c;
  ASSERT_NO_THROW(c = event_json(ch.delta(d)));
  EXPECT_EQ(c["choices"][0]["delta"]["content"], "a\xef\xbf\xbd");
}

TEST(OpenAIResponse, ChatLogprobs) {
  moe::serve::TokenLogprob t;
  t.token = 5;
  t.text = "hi";
  t.logprob = -0.25f;
  t.top = {{5, -0.25f}, {6, -2.0f}, {7, -3.0f}};
  const auto text = [](int32_t id) { return "t" + std::to_string(id); };
  json j = json::parse(dump(chat_logprobs_content({t}, 2, text)));
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["token"], "hi");
  EXPECT_DOUBLE_EQ(j[0]["logprob"].get<double>(), -0.25);
  EXPECT_EQ(j[0]["bytes"], json({104, 105}));
  ASSERT_EQ(j[0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(j[0]["top_logprobs"][1]["token"], "t6");
  EXPECT_EQ(j[0]["top_logprobs"][1]["bytes"], json({116, 54}));
  t.logprob = -std::numeric_limits<float>::infinity();
  j = json::parse(dump(chat_logprobs_content({t}, 0, text)));
  EXPECT_EQ(j[0]["logprob"], -9999.0);
  EXPECT_EQ(j[0]["top_logprobs"], json::array());
}

TEST(OpenAIResponse, LegacyCompletionLogprobs) {
  CompletionLogprobs lp;
  moe::serve::TokenLogprob a{1, "d\xc3\xa9", -1.0f, {{1, -1.0f}, {2, -1.5f}}};
  moe::serve::TokenLogprob b{2, "f", -0.5f, {{2, -0.5f}}};
  const auto text = [](int32_t id) { return id == 1 ? std::string("d\xc3\xa9") : std::string("f"); };
  lp.add(a, 2, text, false);  // an echoed prompt's first token: no logprob
  lp.add(b, 2, text);
  json j = json::parse(dump(lp.json()));
  EXPECT_EQ(j["tokens"], json({"d\xc3\xa9", "f"}));
  EXPECT_TRUE(j["token_logprobs"][0].is_null());
  EXPECT_DOUBLE_EQ(j["token_logprobs"][1].get<double>(), -0.5);
  EXPECT_TRUE(j["top_logprobs"][0].is_null());
  EXPECT_EQ(j["top_logprobs"][1], json({{"f", -0.5}}));
  EXPECT_EQ(j["text_offset"], json({0, 2}));  // characters, not bytes
  lp.clear_tokens();
  lp.add(b, 0, text);
  j = json::parse(dump(lp.json()));
  EXPECT_EQ(j["text_offset"], json({3}));
  EXPECT_EQ(j["top_logprobs"][0], json::object());
}

TEST(OpenAIResponse, TextCompletionShapes) {
  TextCompletion c{"cmpl-1", "tiny", "out", 9, "length", {4, 1, 0}, std::nullopt};
  json j = json::parse(dump(text_completion_json(c)));
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "out");
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["total_tokens"], 5);
  json ch = event_json(text_completion_chunk("cmpl-1", 9, "tiny", "o", nullptr, nullptr));
  EXPECT_EQ(ch["choices"][0]["text"], "o");
  EXPECT_TRUE(ch["choices"][0]["finish_reason"].is_null());
  ch = event_json(text_completion_usage_chunk("cmpl-1", 9, "tiny", {4, 1, 0}));
  EXPECT_EQ(ch["choices"], json::array());
  EXPECT_EQ(ch["usage"]["completion_tokens"], 1);
}

TEST(OpenAIResponse, Models) {
  json j = json::parse(dump(models_json("tiny-moe", 3)));
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["data"][0]["id"], "tiny-moe");
  EXPECT_EQ(j["data"][0]["object"], "model");
  EXPECT_EQ(j["data"][0]["owned_by"], "moe");
}

TEST(HttpAuth, Loopback) {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"}) EXPECT_TRUE(is_loopback_host(h)) << h;
  for (const char* h : {"0.0.0.0", "::", "192.168.1.2", "10.0.0.1", "example.com", "", "128.0.0.1", "::ffff:127.0.0.1x"})
    EXPECT_FALSE(is_loopback_host(h)) << h;
}

TEST(HttpAuth, Bearer) {
  EXPECT_NO_THROW(check_bearer("", ""));
  EXPECT_NO_THROW(check_bearer("anything", ""));
  EXPECT_NO_THROW(check_bearer("Bearer sk-123", "sk-123"));
  EXPECT_NO_THROW(check_bearer("bearer  sk-123 ", "sk-123"));
  for (const char* h : {"", "Bearer", "Bearer sk-12", "Bearer sk-1234", "Basic sk-123", "sk-123", "Bearer SK-123"}) {
    try {
      check_bearer(h, "sk-123");
      ADD_FAILURE() << "accepted: " << h;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 401);
      EXPECT_EQ(e.code, "invalid_api_key");
    }
  }
}
