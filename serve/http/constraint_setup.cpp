#include "serve/http/constraint_setup.h"

#include <fmt/format.h>

#include "serve/grammar/constraint_spec.h"
#include "serve/scheduler/grammar_constraint.h"

namespace moe::serve::http {

namespace {

const char* kind_name(OutputConstraint::Kind k) {
  switch (k) {
    case OutputConstraint::Kind::none: return "none";
    case OutputConstraint::Kind::json_object: return "json_object";
    case OutputConstraint::Kind::json_schema: return "json_schema";
    case OutputConstraint::Kind::grammar: return "grammar";
    case OutputConstraint::Kind::regex: return "regex";
    case OutputConstraint::Kind::tool_calls: return "tool_calls";
  }
  return "?";
}

struct Reasoning {
  bool on = false;
  std::string open, close;
};

// A model that thinks first gets its thinking block free: only the answer is enforced. It is
// on when the prompt opened the block, or the vocabulary has the markers as tokens.
Reasoning reasoning_for(const ServeContext& cx, bool starts_in_reasoning) {
  const std::string& f = cx.chat.parser_family;
  Reasoning r;
  r.open = f == "mistral" ? "[THINK]" : "<think>";
  r.close = f == "mistral" ? "[/THINK]" : "</think>";
  r.on = starts_in_reasoning || (cx.tok.token_to_id(r.open) && cx.tok.token_to_id(r.close));
  return r;
}

}  // namespace

std::shared_ptr<LogitsProcessor> make_constraint(ServeContext& cx, const OutputConstraint& c,
                                                 const nlohmann::ordered_json& tools, bool starts_in_reasoning) {
  using grammar::GrammarSpec;
  if (c.kind == OutputConstraint::Kind::none) return nullptr;
  if (!cx.grammars)
    throw ApiError(400, "invalid_request_error", "This server was started without constrained decoding.", c.param,
                   "unsupported_parameter");
  const std::string& family = cx.chat.parser_family;
  if (family == "harmony")
    throw ApiError(400, "invalid_request_error",
                   fmt::format("'{}': constrained output is not supported yet for this model's output format (harmony).",
                               c.param),
                   c.param, "unsupported_parameter");
  const Reasoning rs = reasoning_for(cx, starts_in_reasoning);
  auto finish = [&](grammar::Grammar g) {
    return rs.on ? grammar::with_reasoning(std::move(g), rs.open, rs.close, starts_in_reasoning) : g;
  };
  std::string key = fmt::format("{}|{}|{}|{}", kind_name(c.kind), rs.on, starts_in_reasoning, family);
  std::function<grammar::Grammar()> build;
  if (c.kind == OutputConstraint::Kind::tool_calls) {
    // Tool calls are enforced in the syntax the output parser reads back.
    if (family != "hermes" && family != "qwen3_coder")
      throw ApiError(400, "invalid_request_error",
                     fmt::format("tool_choice '{}' needs tool calls we can enforce; this model writes them in the '{}' "
                                 "syntax, where 'hermes' (<tool_call> JSON: Qwen2.5, Qwen3, tiny-moe) and "
                                 "'qwen3_coder' (<function=...> XML) are supported so far. Use tool_choice 'auto'.",
                                 c.function ? "a named function" : "required", family),
                     "tool_choice", "unsupported_parameter");
    const auto syntax = family == "hermes" ? grammar::ToolSyntax::hermes : grammar::ToolSyntax::qwen3_coder;
    key += fmt::format("|{}|{}|{}", c.function.value_or(""), c.parallel, tools.dump());
    build = [&, syntax] { return finish(grammar::tool_call_grammar(tools, syntax, c.function, c.parallel)); };
  } else {
    GrammarSpec spec;
    spec.kind = c.kind == OutputConstraint::Kind::json_object   ? GrammarSpec::Kind::json_object
                : c.kind == OutputConstraint::Kind::json_schema ? GrammarSpec::Kind::json_schema
                : c.kind == OutputConstraint::Kind::grammar     ? GrammarSpec::Kind::gbnf
                                                                : GrammarSpec::Kind::regex;
    spec.text = c.text;
    key += "|" + c.text;
    build = [spec, &finish] { return finish(grammar::build_grammar(spec)); };
  }
  bool compiled = false;
  std::shared_ptr<const grammar::CompiledGrammar> g;
  const auto t0 = Clock::now();
  try {
    g = cx.grammars->get(key, build, &compiled);
  } catch (const grammar::GrammarError& e) {
    throw bad_request(fmt::format("Invalid '{}': {}", c.param, e.what()), c.param, "invalid_grammar");
  }
  cx.metrics.constrained(kind_name(c.kind), compiled, std::chrono::duration<double>(Clock::now() - t0).count());
  return std::make_shared<GrammarConstraint>(std::move(g));
}

}  // namespace moe::serve::http
