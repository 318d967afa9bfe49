// The constraint flags of `moe run` and `moe grammar`: --json-schema, --json-object, --grammar,
// --regex, --tool-calls (with --tool, --parallel-calls, --tool-syntax), --flexible-whitespace.
#pragma once
#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "serve/grammar/grammar.h"

namespace moe::cli {

struct ConstraintFlags {
  std::string schema, gbnf, regex, tools, tool, tool_syntax = "hermes";
  bool json_object = false, flexible = false, parallel = false;
};

void add_constraint_flags(CLI::App* c, ConstraintFlags& f);
// The grammar the flags ask for; nullopt when none. Throws std::invalid_argument (a message
// naming the flag) for two constraints at once, unreadable files and refused schemas/grammars.
std::optional<grammar::Grammar> constraint_grammar(const ConstraintFlags& f);

}  // namespace moe::cli
