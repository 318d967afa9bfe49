// serve/http/openai_request: every field's wrong type or range is a 400 naming the field.
#include <gtest/gtest.h>

#include <string>

#include "serve/http/openai_request.h"

using namespace moe::serve::http;
using json = nlohmann::ordered_json;

namespace {

const RequestLimits kLimits{.vocab_size = 4096};

std::string chat_body(const json& extra) {
  json b = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  for (const auto& [k, v] : extra.items()) b[k] = v;
  return b.dump();
}

// The ApiError a body gives, or a failure when it parses.
ApiError chat_error(const std::string& body) {
  try {
    parse_chat_request(body, kLimits);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "", "");
}

ApiError completion_error(const std::string& body) {
  try {
    parse_completion_request(body, kLimits);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "", "");
}

void expect_param(const json& extra, const std::string& param) {
  const ApiError e = chat_error(chat_body(extra));
  EXPECT_EQ(e.status, 400) << extra.dump();
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_EQ(e.param, param) << extra.dump() << " -> " << e.what();
}

}  // namespace

TEST(OpenAIRequest, MinimalChatGetsDefaults) {
  const ChatRequest r = parse_chat_request(chat_body(json::object()), kLimits);
  EXPECT_EQ(r.model, "m");
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.max_tokens);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_FALSE(r.sampling.seed);
  EXPECT_TRUE(r.tools.is_null());
  EXPECT_FALSE(r.tools_enabled);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0]["role"], "user");
  EXPECT_EQ(r.messages[0]["content"], "hi");
}

TEST(OpenAIRequest, SamplingFieldsAreRead) {
  const ChatRequest r = parse_chat_request(
      chat_body({{"temperature", 0.5}, {"top_p", 0.9}, {"top_k", 40}, {"min_p", 0.05}, {"presence_penalty", 1},
                 {"frequency_penalty", -1.5}, {"seed", 42}, {"max_completion_tokens", 7}, {"max_tokens", 9},
                 {"stop", {"a", "", "bc"}}, {"logit_bias", {{"17", -100}, {"4095", 5.5}}}, {"n", 1},
                 {"stream", true}, {"stream_options", {{"include_usage", true}}}, {"logprobs", true},
                 {"top_logprobs", 3}}),
      kLimits);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 1.0f);
  EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, -1.5f);
  EXPECT_EQ(r.sampling.seed, 42u);
  EXPECT_EQ(r.max_tokens, 7);  // max_completion_tokens wins
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "bc"}));
  ASSERT_EQ(r.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(r.sampling.logit_bias[0].first, 17);
  EXPECT_FLOAT_EQ(r.sampling.logit_bias[0].second, -100.0f);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
}

TEST(OpenAIRequest, NullMeansAbsentAndTopKMinusOneIsOff) {
  const ChatRequest r = parse_chat_request(
      chat_body({{"temperature", nullptr}, {"stop", nullptr}, {"seed", nullptr}, {"top_k", -1}, {"max_tokens", 3.0}}),
      kLimits);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_EQ(r.max_tokens, 3);
  EXPECT_TRUE(parse_chat_request(chat_body({{"stop", "END"}}), kLimits).stop == std::vector<std::string>{"END"});
  EXPECT_EQ(parse_chat_request(chat_body({{"seed", -1}}), kLimits).sampling.seed, ~uint64_t(0));
}

TEST(OpenAIRequest, WrongTypesName400Param) {
  expect_param({{"model", 3}}, "model");
  expect_param({{"stream", "yes"}}, "stream");
  expect_param({{"stream_options", 1}}, "stream_options");
  expect_param({{"stream_options", {{"include_usage", 1}}}}, "stream_options.include_usage");
  expect_param({{"temperature", "hot"}}, "temperature");
  expect_param({{"top_p", true}}, "top_p");
  expect_param({{"top_k", 1.5}}, "top_k");
  expect_param({{"min_p", json::array()}}, "min_p");
  expect_param({{"presence_penalty", "1"}}, "presence_penalty");
  expect_param({{"frequency_penalty", json::object()}}, "frequency_penalty");
  expect_param({{"seed", "7"}}, "seed");
  expect_param({{"max_tokens", "10"}}, "max_tokens");
  expect_param({{"max_completion_tokens", 2.5}}, "max_completion_tokens");
  expect_param({{"stop", 5}}, "stop");
  expect_param({{"stop", {"a", 1}}}, "stop[1]");
  expect_param({{"logit_bias", {1, 2}}}, "logit_bias");
  expect_param({{"logit_bias", {{"12", "x"}}}}, "logit_bias.12");
  expect_param({{"n", "1"}}, "n");
  expect_param({{"logprobs", 1}}, "logprobs");
  expect_param({{"logprobs", true}, {"top_logprobs", "2"}}, "top_logprobs");
  expect_param({{"tools", {{"type", "function"}}}}, "tools");
  expect_param({{"tools", json::array({1})}}, "tools[0]");
  expect_param({{"tool_choice", 3}}, "tool_choice");
  expect_param({{"chat_template_kwargs", "x"}}, "chat_template_kwargs");
  expect_param({{"response_format", "json"}}, "response_format");
  expect_param({{"parallel_tool_calls", "no"}}, "parallel_tool_calls");
}

TEST(OpenAIRequest, RangesName400Param) {
  expect_param({{"temperature", 2.5}}, "temperature");
  expect_param({{"temperature", -0.1}}, "temperature");
  expect_param({{"top_p", 0}}, "top_p");
  expect_param({{"top_p", 1.01}}, "top_p");
  expect_param({{"top_k", -2}}, "top_k");
  expect_param({{"min_p", 1.5}}, "min_p");
  expect_param({{"presence_penalty", 2.1}}, "presence_penalty");
  expect_param({{"frequency_penalty", -3}}, "frequency_penalty");
  expect_param({{"max_tokens", 0}}, "max_tokens");
  expect_param({{"max_tokens", -5}}, "max_tokens");
  expect_param({{"max_tokens", 1e12}}, "max_tokens");
  expect_param({{"max_tokens", 18446744073709551615ull}}, "max_tokens");
  expect_param({{"n", 2}}, "n");
  expect_param({{"logit_bias", {{"12", 101}}}}, "logit_bias.12");
  expect_param({{"logit_bias", {{"abc", 1}}}}, "logit_bias");
  expect_param({{"logit_bias", {{"-1", 1}}}}, "logit_bias");
  expect_param({{"logit_bias", {{"4096", 1}}}}, "logit_bias");  // vocab 4096
  expect_param({{"logit_bias", {{"99999999999999", 1}}}}, "logit_bias");
  expect_param({{"stop", json::array({"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
                                      "16", "17"})}},
               "stop");
  expect_param({{"top_logprobs", 2}}, "top_logprobs");  // needs logprobs: true
  expect_param({{"logprobs", true}, {"top_logprobs", 21}}, "top_logprobs");
}

json tools_json() {
  return json::array({{{"type", "function"},
                       {"function", {{"name", "f"}, {"parameters", {{"type", "object"}}}}}},
                      {{"type", "function"}, {"function", {{"name", "g"}}}}});
}

TEST(OpenAIRequest, ConstraintsParse) {
  using K = OutputConstraint::Kind;
  auto chat = [](const json& extra) { return parse_chat_request(chat_body(extra), kLimits).constraint; };
  EXPECT_EQ(chat(json::object()).kind, K::none);
  EXPECT_EQ(chat({{"response_format", {{"type", "text"}}}}).kind, K::none);
  EXPECT_EQ(chat({{"response_format", {{"type", "json_object"}}}}).kind, K::json_object);
  const OutputConstraint s = chat({{"response_format", {{"type", "json_schema"},
                                    {"json_schema", {{"name", "x"}, {"strict", true}, {"schema", {{"type", "object"}, {"required", {"b", "a"}}}}}}}}});
  EXPECT_EQ(s.kind, K::json_schema);
  EXPECT_EQ(s.text, R"({"type":"object","required":["b","a"]})");  // the client's key order
  EXPECT_EQ(s.param, "response_format.json_schema.schema");
  EXPECT_EQ(chat({{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "x"}}}}}}).text, "{}");
  EXPECT_EQ(chat({{"grammar", "root ::= \"a\""}}).kind, K::grammar);
  EXPECT_EQ(chat({{"guided_regex", "[0-9]+"}}).kind, K::regex);
  EXPECT_EQ(chat({{"guided_json", R"({"type":"integer"})"}}).text, R"({"type":"integer"})");
  EXPECT_EQ(chat({{"guided_json", {{"type", "integer"}}}}).kind, K::json_schema);
  const OutputConstraint req = chat({{"tools", tools_json()}, {"tool_choice", "required"}});
  EXPECT_EQ(req.kind, K::tool_calls);
  EXPECT_FALSE(req.function);
  EXPECT_TRUE(req.parallel);
  EXPECT_FALSE(chat({{"tools", tools_json()}, {"tool_choice", "required"}, {"parallel_tool_calls", false}}).parallel);
  const OutputConstraint named =
      chat({{"tools", tools_json()}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "g"}}}}}});
  EXPECT_EQ(named.kind, K::tool_calls);
  EXPECT_EQ(named.function.value_or(""), "g");
  EXPECT_EQ(chat({{"tools", tools_json()}, {"tool_choice", "auto"}}).kind, K::none);
  // completions take the same response_format and extensions
  json cb = {{"model", "m"}, {"prompt", "hi"}, {"regex", "a+"}};
  EXPECT_EQ(parse_completion_request(cb.dump(), kLimits).constraint.kind, K::regex);
}

TEST(OpenAIRequest, ConstraintErrorsNameTheField) {
  expect_param({{"tool_choice", "required"}}, "tool_choice");  // no tools
  expect_param({{"tools", tools_json()}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}}},
               "tool_choice.function.name");
  expect_param({{"tools", tools_json()}, {"tool_choice", {{"type", "function"}}}}, "tool_choice.function.name");
  expect_param({{"tool_choice", "sometimes"}}, "tool_choice");
  expect_param({{"response_format", {{"type", "yaml"}}}}, "response_format.type");
  expect_param({{"response_format", {{"type", "json_schema"}}}}, "response_format.json_schema");
  expect_param({{"response_format", {{"type", "json_schema"}, {"json_schema", {{"schema", "x"}}}}}},
               "response_format.json_schema.schema");
  expect_param({{"response_format", {{"type", "json_object"}}}, {"grammar", "root ::= \"a\""}}, "grammar");
  expect_param({{"tools", tools_json()}, {"tool_choice", "required"}, {"regex", "a"}}, "tool_choice");
  expect_param({{"guided_json", "{not json"}}, "guided_json");
  expect_param({{"grammar", 3}}, "grammar");
  expect_param({{"functions", json::array()}}, "functions");
}

TEST(OpenAIRequest, MalformedBodies) {
  for (const std::string body : {"", "{", "not json", "{\"a\":}", "\"\xff\"", "{\"model\":\"\xc3\"}"}) {
    const ApiError e = chat_error(body);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.type, "invalid_request_error");
  }
  for (const std::string body : {"[]", "3", "null", "\"s\""}) EXPECT_EQ(chat_error(body).status, 400);
  EXPECT_EQ(chat_error("{}").param, "messages");
  EXPECT_EQ(chat_error(R"({"messages": []})").param, "messages");
  EXPECT_EQ(chat_error(R"({"messages": {}})").param, "messages");
}

TEST(OpenAIRequest, MessagesAreValidatedAndNormalized) {
  auto msgs = [](const json& m) { return json{{"messages", m}}.dump(); };
  EXPECT_EQ(chat_error(msgs({1})).param, "messages[0]");
  EXPECT_EQ(chat_error(msgs({{{"content", "x"}}})).param, "messages[0].role");
  EXPECT_EQ(chat_error(msgs({{{"role", "robot"}, {"content", "x"}}})).param, "messages[0].role");
  EXPECT_EQ(chat_error(msgs({{{"role", 1}, {"content", "x"}}})).param, "messages[0].role");
  EXPECT_EQ(chat_error(msgs({{{"role", "user"}}})).param, "messages[0].content");
  EXPECT_EQ(chat_error(msgs({{{"role", "user"}, {"content", nullptr}}})).param, "messages[0].content");
  EXPECT_EQ(chat_error(msgs({{{"role", "user"}, {"content", 5}}})).param, "messages[0].content");
  EXPECT_EQ(chat_error(msgs({{{"role", "user"}, {"content", {{{"type", "image_url"}}}}}})).param,
            "messages[0].content[0].type");
  EXPECT_EQ(chat_error(msgs({{{"role", "user"}, {"content", {{{"type", "text"}}}}}})).param, "messages[0].content[0].text");
  EXPECT_EQ(chat_error(msgs({{{"role", "user"}, {"content", "x"}, {"tool_calls", json::array()}}})).param,
            "messages[0].tool_calls");
  EXPECT_EQ(chat_error(msgs({{{"role", "assistant"}, {"tool_calls", {{{"function", {{"arguments", "{}"}}}}}}}})).param,
            "messages[0].tool_calls[0].function.name");
  EXPECT_EQ(chat_error(msgs({{{"role", "tool"}, {"content", "x"}, {"tool_call_id", 3}}})).param,
            "messages[0].tool_call_id");

  const ChatRequest r = parse_chat_request(
      msgs({{{"role", "developer"}, {"content", "be brief"}},
            {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}}}},
            {{"role", "assistant"},
             {"content", nullptr},
             {"tool_calls",
              {{{"id", "call_1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", R"({"x": 1})"}}}}}}},
            {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "2"}},
            {{"role", "assistant"}, {"content", nullptr}}}),
      kLimits);
  ASSERT_EQ(r.messages.size(), 5u);
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[1]["content"], "a\nb");
  EXPECT_EQ(r.messages[2]["content"], "");  // null (only tool calls): "" for the template
  EXPECT_EQ(r.messages[2]["tool_calls"][0]["function"]["arguments"], json({{"x", 1}}));
  EXPECT_EQ(r.messages[2]["tool_calls"][0]["id"], "call_1");
  EXPECT_EQ(r.messages[3]["tool_call_id"], "call_1");
  EXPECT_EQ(r.messages[4]["content"], "");  // null without calls: empty text
}

TEST(OpenAIRequest, ToolsAndToolChoice) {
  const json tools = {{{"type", "function"},
                       {"function", {{"name", "get"}, {"description", "d"}, {"parameters", {{"type", "object"}}}}}}};
  ChatRequest r = parse_chat_request(chat_body({{"tools", tools}}), kLimits);
  EXPECT_TRUE(r.tools_enabled);
  EXPECT_EQ(r.tools, tools);
  r = parse_chat_request(chat_body({{"tools", tools}, {"tool_choice", "none"}}), kLimits);
  EXPECT_FALSE(r.tools_enabled);
  EXPECT_FALSE(parse_chat_request(chat_body({{"tools", json::array()}}), kLimits).tools_enabled);
  expect_param({{"tools", {{{"type", "function"}}}}}, "tools[0].function");
  expect_param({{"tools", {{{"type", "retrieval"}, {"function", {{"name", "x"}}}}}}}, "tools[0].type");
  expect_param({{"tools", {{{"function", {{"name", ""}}}}}}}, "tools[0].function.name");
  expect_param({{"tools", {{{"function", {{"name", "x"}, {"parameters", "{}"}}}}}}}, "tools[0].function.parameters");
  r = parse_chat_request(chat_body({{"chat_template_kwargs", {{"enable_thinking", false}}}}), kLimits);
  EXPECT_EQ(r.chat_template_kwargs["enable_thinking"], false);
}

TEST(OpenAIRequest, CompletionPrompts) {
  CompletionRequest r = parse_completion_request(R"({"prompt": "def f():", "logprobs": 2, "echo": true})", kLimits);
  EXPECT_FALSE(r.token_prompt);
  EXPECT_EQ(r.prompt, "def f():");
  EXPECT_EQ(r.logprobs, 2);
  EXPECT_TRUE(r.echo);
  r = parse_completion_request(R"({"prompt": ["only one"]})", kLimits);
  EXPECT_EQ(r.prompt, "only one");
  EXPECT_EQ(r.logprobs, -1);
  r = parse_completion_request(R"({"prompt": [1, 2, 3]})", kLimits);
  EXPECT_TRUE(r.token_prompt);
  EXPECT_EQ(r.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  r = parse_completion_request(R"({"prompt": [[4, 5]]})", kLimits);
  EXPECT_EQ(r.prompt_tokens, (std::vector<int32_t>{4, 5}));

  EXPECT_EQ(completion_error("{}").param, "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": 5})").param, "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": ["a", "b"]})").param, "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": []})").param, "prompt");
  EXPECT_EQ(completion_error(R"({"prompt": [1, 4096]})").param, "prompt[1]");
  EXPECT_EQ(completion_error(R"({"prompt": [[1, -1]]})").param, "prompt[0][1]");
  EXPECT_EQ(completion_error(R"({"prompt": [1, "a"]})").param, "prompt[1]");
  EXPECT_EQ(completion_error(R"({"prompt": "x", "logprobs": 21})").param, "logprobs");
  EXPECT_EQ(completion_error(R"({"prompt": "x", "logprobs": "1"})").param, "logprobs");
  EXPECT_EQ(completion_error(R"({"prompt": "x", "echo": 1})").param, "echo");
  EXPECT_EQ(completion_error(R"({"prompt": "x", "best_of": 2})").param, "best_of");
  EXPECT_EQ(completion_error(R"({"prompt": "x", "suffix": "y"})").param, "suffix");
  EXPECT_EQ(completion_error(R"({"prompt": "x", "temperature": 9})").param, "temperature");
  EXPECT_NO_THROW(parse_completion_request(R"({"prompt": "x", "suffix": ""})", kLimits));
}

TEST(OpenAIRequest, MessagesNameTheirField) {
  const ApiError e = chat_error(chat_body({{"temperature", 3}}));
  EXPECT_NE(std::string(e.what()).find("'temperature'"), std::string::npos) << e.what();
  const ApiError t = chat_error(chat_body({{"temperature", "x"}}));
  EXPECT_NE(std::string(t.what()).find("expected a number, but got a string"), std::string::npos) << t.what();
}
