#include "tools/constraint_flags.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "serve/grammar/constraint_spec.h"
#include "tools/model_files.h"

namespace moe::cli {

void add_constraint_flags(CLI::App* c, ConstraintFlags& f) {
  c->add_option("--json-schema", f.schema, "Constrain the output to JSON valid under this JSON Schema file");
  c->add_flag("--json-object", f.json_object, "Constrain the output to a JSON object");
  c->add_option("--grammar", f.gbnf, "Constrain the output to this GBNF grammar file (llama.cpp's format; rule 'root')");
  c->add_option("--regex", f.regex, "Constrain the output to match this regular expression as a whole");
  c->add_option("--tool-calls", f.tools, "JSON file of OpenAI tools: the output is <tool_call> JSON calling one of them");
  c->add_option("--tool", f.tool, "With --tool-calls: only this function");
  c->add_flag("--parallel-calls", f.parallel, "With --tool-calls: one or more calls");
  c->add_option("--tool-syntax", f.tool_syntax, "With --tool-calls: hermes (<tool_call> JSON) or qwen3_coder (<function=...> XML)")
      ->check(CLI::IsMember({"hermes", "qwen3_coder"}))
      ->capture_default_str();
  c->add_flag("--flexible-whitespace", f.flexible, "JSON: allow up to 20 whitespace characters between tokens (default compact)");
}

std::optional<grammar::Grammar> constraint_grammar(const ConstraintFlags& f) {
  using grammar::GrammarSpec;
  using json = nlohmann::ordered_json;
  const int given = !f.schema.empty() + f.json_object + !f.gbnf.empty() + !f.regex.empty() + !f.tools.empty();
  if (given == 0) {
    if (!f.tool.empty() || f.parallel) throw std::invalid_argument("--tool and --parallel-calls need --tool-calls FILE");
    return std::nullopt;
  }
  if (given > 1) throw std::invalid_argument("give one of --json-schema, --json-object, --grammar, --regex, --tool-calls");
  try {
    if (!f.tools.empty()) {
      json tools;
      try {
        tools = json::parse(read_text_file(f.tools, "--tool-calls"));
      } catch (const json::exception& e) {
        throw std::invalid_argument(fmt::format("--tool-calls {}: not valid JSON: {}", f.tools, e.what()));
      }
      if (tools.is_object() && tools.contains("tools")) tools = tools["tools"];
      const auto syntax = f.tool_syntax == "qwen3_coder" ? grammar::ToolSyntax::qwen3_coder : grammar::ToolSyntax::hermes;
      return grammar::tool_call_grammar(tools, syntax, f.tool.empty() ? std::nullopt : std::optional(f.tool), f.parallel);
    }
    GrammarSpec spec;
    spec.flexible_whitespace = f.flexible;
    if (!f.schema.empty()) {
      spec.kind = GrammarSpec::Kind::json_schema;
      spec.text = read_text_file(f.schema, "--json-schema");
    } else if (f.json_object) {
      spec.kind = GrammarSpec::Kind::json_object;
    } else if (!f.gbnf.empty()) {
      spec.kind = GrammarSpec::Kind::gbnf;
      spec.text = read_text_file(f.gbnf, "--grammar");
    } else {
      spec.kind = GrammarSpec::Kind::regex;
      spec.text = f.regex;
    }
    return grammar::build_grammar(spec);
  } catch (const grammar::GrammarError& e) {
    const std::string flag = !f.schema.empty() ? "--json-schema " + f.schema
                             : !f.gbnf.empty() ? "--grammar " + f.gbnf
                             : !f.tools.empty() ? "--tool-calls " + f.tools
                             : !f.regex.empty() ? std::string("--regex")
                                                : std::string("--json-object");
    throw std::invalid_argument(fmt::format("{}: {}", flag, e.what()));
  }
}

}  // namespace moe::cli
