// Tool calls as a grammar, in the syntax the model's output parser reads (constraint_spec.h).
#include <fmt/format.h>

#include <algorithm>

#include "serve/grammar/constraint_spec.h"
#include "serve/grammar/json_schema.h"

namespace moe::grammar {

using json = nlohmann::ordered_json;

namespace {

struct Tool {
  std::string name;
  json params;  // the parameters schema ({"type": "object"} when absent)
};

std::vector<Tool> tools_of(const json& tools, const std::optional<std::string>& function) {
  if (!tools.is_array() || tools.empty()) throw GrammarError("tool calls: no tools to call");
  std::vector<Tool> out;
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& t = tools[i];
    const json* fn = t.is_object() && t.contains("function") ? &t["function"] : nullptr;
    if (!fn || !fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string())
      throw GrammarError(fmt::format("tool calls: tools[{}] has no function name", i));
    Tool tool{(*fn)["name"].get<std::string>(), json{{"type", "object"}}};
    if (function && tool.name != *function) continue;
    if (fn->contains("parameters") && !(*fn)["parameters"].is_null()) tool.params = (*fn)["parameters"];
    out.push_back(std::move(tool));
  }
  if (out.empty()) throw GrammarError(fmt::format("tool calls: no tool named '{}'", function.value_or("")));
  return out;
}

JsonSchemaOptions compact() { return {}; }

// {"name": "f", "arguments": ARGS}
Expr hermes_call(Builder& b, const Tool& t) {
  RuleId args;
  try {
    args = add_json_schema(b, t.params, compact());
  } catch (const GrammarError& e) {
    throw GrammarError(fmt::format("tool '{}': {}", t.name, e.what()));
  }
  const Expr sp = opt(lit(" "));
  return seq({lit("<tool_call>\n{\"name\":"), sp, lit(json(t.name).dump()), lit(","), sp, lit("\"arguments\":"), sp,
              ref(args), lit("}\n</tool_call>")});
}

// Any UTF-8 text that does not contain `marker` (ASCII), then the marker, then `then`: the marker
// automaton's states as rules, each character moving between them by a tail call.
Expr text_until(Builder& b, const std::string& marker, const Expr& then) {
  const size_t m = marker.size();
  const auto steps = marker_steps(marker, 0x80);
  std::vector<RuleId> st(m);
  for (size_t k = 0; k < m; ++k) st[k] = b.declare("text_until");
  const RuleId done = b.rule("after_text", then);
  for (size_t k = 0; k < m; ++k) {
    std::vector<Expr> alts;
    for (size_t t = 0; t <= m; ++t)
      if (!steps[k][t].empty()) alts.push_back(seq({byte_set(steps[k][t]), ref(t == m ? done : st[t])}));
    alts.push_back(seq({chars({{0x80, 0x10FFFF}}), ref(st[0])}));  // the marker is ASCII
    b.define(st[k], alt(std::move(alts)));
  }
  return ref(st[0]);
}

// The JSON types a parameter schema allows, as the qwen3_coder parser reads them: a string
// (or no type) means raw text.
bool raw_text_param(const json& s) {
  if (!s.is_object() || !s.contains("type")) return !(s.is_object() && (s.contains("properties") || s.contains("items")));
  const json& t = s["type"];
  if (t.is_string()) return t == "string";
  if (t.is_array())
    for (const json& x : t)
      if (x == "string") return true;
  return false;
}

// <function=f>\n (<parameter=p>\nVALUE\n</parameter>\n)* </function>, parameters in the schema's
// order, required ones always.
Expr coder_call(Builder& b, const Tool& t) {
  const json& props = t.params.contains("properties") ? t.params["properties"] : json::object();
  std::vector<std::string> required;
  if (t.params.contains("required") && t.params["required"].is_array())
    for (const json& r : t.params["required"])
      if (r.is_string()) required.push_back(r.get<std::string>());
  auto is_required = [&](const std::string& k) { return std::find(required.begin(), required.end(), k) != required.end(); };
  std::vector<std::pair<std::string, json>> params;
  for (const auto& [k, v] : props.items()) params.emplace_back(k, v);
  for (const auto& r : required)
    if (!props.contains(r)) params.emplace_back(r, json::object());
  std::vector<Expr> parts{lit("<tool_call>\n<function=" + t.name + ">\n")};
  for (const auto& [k, schema] : params) {
    if (k.find_first_of("<>\n") != std::string::npos)
      throw GrammarError(fmt::format("tool '{}': parameter name '{}' cannot be written in the XML syntax", t.name, k));
    const std::string head = "<parameter=" + k + ">\n";
    Expr param;
    if (schema.is_object() && schema.contains("enum")) {
      std::vector<Expr> vals;
      for (const json& v : schema["enum"]) vals.push_back(lit(v.is_string() ? v.get<std::string>() : v.dump()));
      param = seq({lit(head), alt(std::move(vals)), lit("\n</parameter>\n")});
    } else if (raw_text_param(schema)) {
      for (const char* kw : {"pattern", "format", "minLength", "maxLength", "const"})
        if (schema.is_object() && schema.contains(kw))
          throw GrammarError(fmt::format("tool '{}': parameter '{}': '{}' cannot be enforced on a raw-text value of the "
                                         "qwen3_coder syntax",
                                         t.name, k, kw));
      param = seq({lit(head), text_until(b, "\n</parameter>", lit("\n"))});
    } else {
      RuleId v;
      try {
        v = add_json_schema(b, schema, compact());
      } catch (const GrammarError& e) {
        throw GrammarError(fmt::format("tool '{}': parameter '{}': {}", t.name, k, e.what()));
      }
      param = seq({lit(head), ref(v), lit("\n</parameter>\n")});
    }
    parts.push_back(is_required(k) ? std::move(param) : opt(std::move(param)));
  }
  parts.push_back(lit("</function>\n</tool_call>"));
  return seq(std::move(parts));
}

}  // namespace

Grammar tool_call_grammar(const json& tools, ToolSyntax syntax, const std::optional<std::string>& function,
                          bool parallel) {
  Builder b;
  std::vector<Expr> calls;
  for (const Tool& t : tools_of(tools, function))
    calls.push_back(syntax == ToolSyntax::hermes ? hermes_call(b, t) : coder_call(b, t));
  const RuleId call = b.rule("tool_call", alt(std::move(calls)));
  const RuleId root = parallel ? b.rule("tool_calls", seq({ref(call), star(seq({lit("\n"), ref(call)}))})) : call;
  return b.build(root);
}

}  // namespace moe::grammar
