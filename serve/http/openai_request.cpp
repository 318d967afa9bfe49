#include "serve/http/openai_request.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace moe::serve::http {

using json = nlohmann::ordered_json;

namespace {

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "an unsupported value";
  }
}

[[noreturn]] void wrong_type(const std::string& param, const char* expected, const json& got) {
  throw bad_request("Invalid type for '" + param + "': expected " + expected + ", but got " + type_name(got) +
                        " instead.",
                    param);
}

// A value as the client wrote it, short (for messages).
std::string shown(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 64) s = s.substr(0, 61) + "...";
  return s;
}

[[noreturn]] void out_of_range(const std::string& param, const std::string& expected, const json& got) {
  throw bad_request("Invalid '" + param + "': expected " + expected + ", but got " + shown(got) + " instead.", param);
}

// The field, or nullptr when absent or null.
const json* field(const json& o, const char* key) {
  const auto it = o.find(key);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& v, const std::string& param) {
  if (!v.is_number()) wrong_type(param, "a number", v);
  const double d = v.get<double>();
  if (!std::isfinite(d)) out_of_range(param, "a finite number", v);
  return d;
}

double number_in(const json& v, const std::string& param, double lo, double hi) {
  const double d = number(v, param);
  if (d < lo || d > hi) out_of_range(param, "a value in [" + json(lo).dump() + ", " + json(hi).dump() + "]", v);
  return d;
}

int64_t integer(const json& v, const std::string& param) {
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) out_of_range(param, "a smaller integer", v);
    return int64_t(v.get<uint64_t>());
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {  // 5.0 from a client that only has doubles
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return int64_t(d);
  }
  wrong_type(param, "an integer", v);
}

int64_t integer_in(const json& v, const std::string& param, int64_t lo, int64_t hi) {
  const int64_t i = integer(v, param);
  if (i < lo || i > hi) out_of_range(param, "a value in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", v);
  return i;
}

bool boolean(const json& v, const std::string& param) {
  if (!v.is_boolean()) wrong_type(param, "a boolean", v);
  return v.get<bool>();
}

const std::string& string(const json& v, const std::string& param) {
  if (!v.is_string()) wrong_type(param, "a string", v);
  return v.get_ref<const std::string&>();
}

void parse_common(const json& b, CommonRequest& r, const RequestLimits& L) {
  if (const json* v = field(b, "model")) r.model = string(*v, "model");
  if (const json* v = field(b, "stream")) r.stream = boolean(*v, "stream");
  if (const json* v = field(b, "stream_options")) {
    if (!v->is_object()) wrong_type("stream_options", "an object", *v);
    if (const json* u = field(*v, "include_usage")) r.include_usage = boolean(*u, "stream_options.include_usage");
  }
  for (const char* k : {"max_tokens", "max_completion_tokens"})  // the second wins
    if (const json* v = field(b, k)) r.max_tokens = integer_in(*v, k, 1, std::numeric_limits<int32_t>::max());
  if (const json* v = field(b, "n")) integer_in(*v, "n", 1, 1);
  SamplingOptions& s = r.sampling;
  if (const json* v = field(b, "temperature")) s.temperature = float(number_in(*v, "temperature", 0, 2));
  if (const json* v = field(b, "top_p")) {
    s.top_p = float(number_in(*v, "top_p", 0, 1));
    if (s.top_p <= 0) out_of_range("top_p", "a value in (0, 1]", *v);
  }
  if (const json* v = field(b, "top_k")) {  // -1 (vLLM) and 0 both mean off
    s.top_k = int(integer_in(*v, "top_k", -1, std::numeric_limits<int32_t>::max()));
    if (s.top_k < 0) s.top_k = 0;
  }
  if (const json* v = field(b, "min_p")) s.min_p = float(number_in(*v, "min_p", 0, 1));
  if (const json* v = field(b, "presence_penalty")) s.presence_penalty = float(number_in(*v, "presence_penalty", -2, 2));
  if (const json* v = field(b, "frequency_penalty"))
    s.frequency_penalty = float(number_in(*v, "frequency_penalty", -2, 2));
  if (const json* v = field(b, "seed")) {
    if (v->is_number_unsigned()) s.seed = v->get<uint64_t>();
    else s.seed = uint64_t(integer(*v, "seed"));  // negative seeds wrap: still a fixed seed
  }
  if (const json* v = field(b, "logit_bias")) {
    if (!v->is_object()) wrong_type("logit_bias", "an object", *v);
    for (const auto& [key, bias] : v->items()) {
      const std::string param = "logit_bias." + key.substr(0, 32);
      int64_t id = -1;
      bool ok = !key.empty() && key.size() <= 10;
      for (const char c : key) ok = ok && c >= '0' && c <= '9';
      if (ok) id = std::stoll(key);
      if (!ok || id > std::numeric_limits<int32_t>::max() || (L.vocab_size > 0 && id >= L.vocab_size))
        throw bad_request("Invalid key in 'logit_bias': '" + key.substr(0, 32) + "' is not a token id" +
                              (L.vocab_size > 0 ? " in [0, " + std::to_string(L.vocab_size) + ")" : std::string()) + ".",
                          "logit_bias");
      s.logit_bias.emplace_back(int32_t(id), float(number_in(bias, param, -100, 100)));
    }
  }
  if (const json* v = field(b, "stop")) {
    if (v->is_string()) {
      if (!v->get_ref<const std::string&>().empty()) r.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      if (v->size() > L.max_stop)
        throw bad_request("Invalid 'stop': at most " + std::to_string(L.max_stop) + " stop sequences, but got " +
                              std::to_string(v->size()) + ".",
                          "stop");
      for (size_t i = 0; i < v->size(); ++i) {
        const std::string& s1 = string((*v)[i], "stop[" + std::to_string(i) + "]");
        if (!s1.empty()) r.stop.push_back(s1);
      }
    } else {
      wrong_type("stop", "a string or an array of strings", *v);
    }
  }
  if (field(b, "functions") || field(b, "function_call"))
    throw bad_request("'functions' and 'function_call' are deprecated and not supported; use 'tools' and 'tool_choice'.",
                      field(b, "functions") ? "functions" : "function_call");
  auto set_constraint = [&](OutputConstraint::Kind kind, std::string text, const std::string& param) {
    if (r.constraint.kind != OutputConstraint::Kind::none)
      throw bad_request("Only one output constraint per request: '" + r.constraint.param + "' and '" + param +
                            "' were both given.",
                        param);
    r.constraint.kind = kind;
    r.constraint.text = std::move(text);
    r.constraint.param = param;
  };
  if (const json* v = field(b, "response_format")) {
    if (!v->is_object()) wrong_type("response_format", "an object", *v);
    const json* t = field(*v, "type");
    if (!t) throw bad_request("Missing required parameter: 'response_format.type'.", "response_format.type");
    const std::string& type = string(*t, "response_format.type");
    if (type == "json_object") {
      set_constraint(OutputConstraint::Kind::json_object, "", "response_format");
    } else if (type == "json_schema") {
      const json* js = field(*v, "json_schema");
      if (!js) throw bad_request("Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema");
      if (!js->is_object()) wrong_type("response_format.json_schema", "an object", *js);
      if (const json* st = field(*js, "strict")) boolean(*st, "response_format.json_schema.strict");
      const json* schema = field(*js, "schema");
      if (schema && !schema->is_object() && !schema->is_boolean())
        wrong_type("response_format.json_schema.schema", "an object", *schema);
      set_constraint(OutputConstraint::Kind::json_schema, schema ? schema->dump() : "{}", "response_format.json_schema.schema");
    } else if (type != "text") {
      throw bad_request("Invalid 'response_format.type': expected 'text', 'json_object' or 'json_schema', but got '" +
                            type.substr(0, 32) + "'.",
                        "response_format.type");
    }
  }
  // Extensions (llama.cpp's `grammar`; vLLM's guided_* names).
  for (const char* name : {"grammar", "guided_grammar"})
    if (const json* v = field(b, name)) set_constraint(OutputConstraint::Kind::grammar, string(*v, name), name);
  for (const char* name : {"regex", "guided_regex"})
    if (const json* v = field(b, name)) set_constraint(OutputConstraint::Kind::regex, string(*v, name), name);
  if (const json* v = field(b, "guided_json")) {
    if (v->is_string()) {
      json parsed = json::parse(v->get_ref<const std::string&>(), nullptr, false);
      if (parsed.is_discarded()) throw bad_request("Invalid 'guided_json': not a JSON schema's text.", "guided_json");
      set_constraint(OutputConstraint::Kind::json_schema, parsed.dump(), "guided_json");
    } else if (v->is_object() || v->is_boolean()) {
      set_constraint(OutputConstraint::Kind::json_schema, v->dump(), "guided_json");
    } else {
      wrong_type("guided_json", "an object", *v);
    }
  }
}

// Message content: a string, or text parts joined with "\n"; null only where allowed.
json content_of(const json& m, const std::string& param, bool null_ok) {
  const json* c = field(m, "content");
  if (!c) {
    if (null_ok) return nullptr;
    throw bad_request("Missing required parameter: '" + param + "'.", param);
  }
  if (c->is_string()) return *c;
  if (!c->is_array()) wrong_type(param, "a string or an array of content parts", *c);
  std::string text;
  for (size_t j = 0; j < c->size(); ++j) {
    const json& part = (*c)[j];
    const std::string pp = param + "[" + std::to_string(j) + "]";
    if (!part.is_object()) wrong_type(pp, "an object", part);
    const json* t = field(part, "type");
    if (!t) throw bad_request("Missing required parameter: '" + pp + ".type'.", pp + ".type");
    const std::string& type = string(*t, pp + ".type");
    if (type != "text")
      throw bad_request("Invalid '" + pp + ".type': only text content is supported, but got '" + type.substr(0, 32) +
                            "'.",
                        pp + ".type");
    const json* tx = field(part, "text");
    if (!tx) throw bad_request("Missing required parameter: '" + pp + ".text'.", pp + ".text");
    if (j) text += '\n';
    text += string(*tx, pp + ".text");
  }
  return text;
}

json tool_calls_of(const json& v, const std::string& param) {
  if (!v.is_array()) wrong_type(param, "an array", v);
  json out = json::array();
  for (size_t j = 0; j < v.size(); ++j) {
    const json& call = v[j];
    const std::string pp = param + "[" + std::to_string(j) + "]";
    if (!call.is_object()) wrong_type(pp, "an object", call);
    const json* f = field(call, "function");
    if (!f) throw bad_request("Missing required parameter: '" + pp + ".function'.", pp + ".function");
    if (!f->is_object()) wrong_type(pp + ".function", "an object", *f);
    const json* name = field(*f, "name");
    if (!name) throw bad_request("Missing required parameter: '" + pp + ".function.name'.", pp + ".function.name");
    json fn = {{"name", string(*name, pp + ".function.name")}};
    // Templates write arguments with `| tojson` or iterate them: give them the object.
    json args = json::object();
    if (const json* a = field(*f, "arguments")) {
      if (a->is_string()) {
        json parsed = json::parse(a->get_ref<const std::string&>(), nullptr, false);
        args = parsed.is_object() ? std::move(parsed) : *a;
      } else if (a->is_object()) {
        args = *a;
      } else {
        wrong_type(pp + ".function.arguments", "a string", *a);
      }
    }
    fn["arguments"] = std::move(args);
    json c = {{"type", "function"}, {"function", std::move(fn)}};
    if (const json* id = field(call, "id")) c["id"] = string(*id, pp + ".id");
    out.push_back(std::move(c));
  }
  return out;
}

json messages_of(const json& b) {
  const json* ms = field(b, "messages");
  if (!ms) throw bad_request("Missing required parameter: 'messages'.", "messages");
  if (!ms->is_array()) wrong_type("messages", "an array", *ms);
  if (ms->empty()) throw bad_request("Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages");
  json out = json::array();
  for (size_t i = 0; i < ms->size(); ++i) {
    const json& m = (*ms)[i];
    const std::string p = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) wrong_type(p, "an object", m);
    const json* r = field(m, "role");
    if (!r) throw bad_request("Missing required parameter: '" + p + ".role'.", p + ".role");
    std::string role = string(*r, p + ".role");
    if (role != "system" && role != "developer" && role != "user" && role != "assistant" && role != "tool")
      throw bad_request("Invalid value for '" + p + ".role': '" + role.substr(0, 32) +
                            "'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.",
                        p + ".role");
    if (role == "developer") role = "system";
    json o = {{"role", role}};
    const bool assistant = role == "assistant";
    json calls;
    if (const json* tc = field(m, "tool_calls")) {
      if (!assistant) throw bad_request("Invalid '" + p + ".tool_calls': only assistant messages have tool calls.", p + ".tool_calls");
      calls = tool_calls_of(*tc, p + ".tool_calls");
    }
    // An assistant message that only calls tools has content null: templates get "" (as vLLM
    // and llama.cpp give them), since many write message['content'] unconditionally.
    json content = content_of(m, p + ".content", assistant);
    o["content"] = content.is_null() ? json("") : std::move(content);
    if (const json* n = field(m, "name")) o["name"] = string(*n, p + ".name");
    if (role == "tool") {
      if (const json* id = field(m, "tool_call_id")) o["tool_call_id"] = string(*id, p + ".tool_call_id");
    }
    if (assistant) {
      if (const json* rc = field(m, "reasoning_content")) o["reasoning_content"] = string(*rc, p + ".reasoning_content");
      if (!calls.is_null()) o["tool_calls"] = std::move(calls);
    }
    out.push_back(std::move(o));
  }
  return out;
}

json tools_of(const json& v) {
  if (!v.is_array()) wrong_type("tools", "an array", v);
  for (size_t i = 0; i < v.size(); ++i) {
    const json& t = v[i];
    const std::string p = "tools[" + std::to_string(i) + "]";
    if (!t.is_object()) wrong_type(p, "an object", t);
    if (const json* type = field(t, "type"); type && string(*type, p + ".type") != "function")
      throw bad_request("Invalid value for '" + p + ".type': only 'function' tools are supported.", p + ".type");
    const json* f = field(t, "function");
    if (!f) throw bad_request("Missing required parameter: '" + p + ".function'.", p + ".function");
    if (!f->is_object()) wrong_type(p + ".function", "an object", *f);
    const json* name = field(*f, "name");
    if (!name) throw bad_request("Missing required parameter: '" + p + ".function.name'.", p + ".function.name");
    if (string(*name, p + ".function.name").empty())
      throw bad_request("Invalid '" + p + ".function.name': empty string.", p + ".function.name");
    if (const json* d = field(*f, "description")) string(*d, p + ".function.description");
    if (const json* ps = field(*f, "parameters"); ps && !ps->is_object())
      wrong_type(p + ".function.parameters", "an object", *ps);
  }
  return v;
}

std::vector<int32_t> token_list(const json& v, const std::string& param, const RequestLimits& L) {
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const int64_t hi = L.vocab_size > 0 ? L.vocab_size - 1 : std::numeric_limits<int32_t>::max();
    ids.push_back(int32_t(integer_in(v[i], param + "[" + std::to_string(i) + "]", 0, hi)));
  }
  return ids;
}

}  // namespace

json parse_body(std::string_view body) {
  json b = json::parse(body.begin(), body.end(), nullptr, false);
  if (b.is_discarded())
    throw bad_request("We could not parse the JSON body of your request. The body must be valid JSON (UTF-8).", "",
                      "invalid_json");
  if (!b.is_object()) throw bad_request("The JSON body of your request must be an object, but got " + std::string(type_name(b)) + ".");
  return b;
}

ChatRequest parse_chat_request(std::string_view body, const RequestLimits& L) {
  const json b = parse_body(body);
  ChatRequest r;
  parse_common(b, r, L);
  r.messages = messages_of(b);
  std::string choice = "auto";
  std::optional<std::string> named;
  if (const json* v = field(b, "tool_choice")) {
    if (v->is_object()) {
      const json* fn = field(*v, "function");
      const json* name = fn && fn->is_object() ? field(*fn, "name") : nullptr;
      if (!name) throw bad_request("Missing required parameter: 'tool_choice.function.name'.", "tool_choice.function.name");
      named = string(*name, "tool_choice.function.name");
      choice = "named";
    } else {
      choice = string(*v, "tool_choice");
      if (choice != "auto" && choice != "none" && choice != "required")
        throw bad_request("Invalid value for 'tool_choice': '" + choice.substr(0, 32) +
                              "'. Supported values are: 'none', 'auto', 'required' or a function.",
                          "tool_choice");
    }
  }
  std::vector<std::string> names;
  if (const json* v = field(b, "tools"))
    for (const json& t : tools_of(*v)) names.push_back(t["function"]["name"].get<std::string>());
  if (!names.empty()) {
    r.tools = *field(b, "tools");
    r.tools_enabled = choice != "none";
  }
  bool parallel = true;
  if (const json* v = field(b, "parallel_tool_calls")) parallel = boolean(*v, "parallel_tool_calls");
  if (choice == "required" || choice == "named") {
    if (names.empty())
      throw bad_request("'tool_choice' is '" + (named ? "a function" : choice) + "' but no tools were given.", "tool_choice");
    if (named && std::find(names.begin(), names.end(), *named) == names.end())
      throw bad_request("Invalid 'tool_choice': no tool named '" + named->substr(0, 64) + "' in 'tools'.",
                        "tool_choice.function.name");
    if (r.constraint.kind != OutputConstraint::Kind::none)
      throw bad_request("Only one output constraint per request: 'tool_choice' and '" + r.constraint.param +
                            "' were both given.",
                        "tool_choice");
    r.constraint.kind = OutputConstraint::Kind::tool_calls;
    r.constraint.param = "tool_choice";
    r.constraint.function = named;
    r.constraint.parallel = parallel && !named;
  }
  if (const json* v = field(b, "logprobs")) r.logprobs = boolean(*v, "logprobs");
  if (const json* v = field(b, "top_logprobs")) {
    r.top_logprobs = int(integer_in(*v, "top_logprobs", 0, L.max_top_logprobs));
    if (!r.logprobs && r.top_logprobs > 0)
      throw bad_request("Invalid 'top_logprobs': 'logprobs' must be true when 'top_logprobs' is set.", "top_logprobs");
  }
  if (const json* v = field(b, "chat_template_kwargs")) {
    if (!v->is_object()) wrong_type("chat_template_kwargs", "an object", *v);
    r.chat_template_kwargs = *v;
  }
  return r;
}

CompletionRequest parse_completion_request(std::string_view body, const RequestLimits& L) {
  const json b = parse_body(body);
  CompletionRequest r;
  parse_common(b, r, L);
  const json* p = field(b, "prompt");
  if (!p) throw bad_request("Missing required parameter: 'prompt'.", "prompt");
  const json* one = p;
  if (p->is_array() && !p->empty() && ((*p)[0].is_string() || (*p)[0].is_array())) {
    if (p->size() != 1) throw bad_request("Invalid 'prompt': only one prompt per request is supported.", "prompt");
    one = &(*p)[0];
  }
  if (one->is_string()) {
    r.prompt = one->get<std::string>();
  } else if (one->is_array()) {
    r.token_prompt = true;
    r.prompt_tokens = token_list(*one, one == p ? "prompt" : "prompt[0]", L);
    if (r.prompt_tokens.empty()) throw bad_request("Invalid 'prompt': empty token list.", "prompt");
  } else {
    wrong_type("prompt", "a string, an array of token ids or an array of one of those", *p);
  }
  if (const json* v = field(b, "best_of")) integer_in(*v, "best_of", 1, 1);
  if (const json* v = field(b, "echo")) r.echo = boolean(*v, "echo");
  if (const json* v = field(b, "logprobs")) {
    // Legacy: an integer; a boolean true (some clients) means 0 alternatives.
    if (v->is_boolean()) r.logprobs = v->get<bool>() ? 0 : -1;
    else r.logprobs = int(integer_in(*v, "logprobs", 0, L.max_top_logprobs));
  }
  if (const json* v = field(b, "suffix"); v && !string(*v, "suffix").empty())
    throw bad_request("Invalid 'suffix': insertion (a suffix) is not supported.", "suffix");
  return r;
}

}  // namespace moe::serve::http
