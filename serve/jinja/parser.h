// Tokens -> statements and expressions, with jinja2's grammar and operator precedence.
#pragma once
#include <string_view>

#include "serve/jinja/ast.h"

namespace moe::jinja {

// Nesting of statements and of expressions deeper than this is a parse error, so that rendering
// (recursive over the tree) cannot overflow the stack on hostile templates.
constexpr int kMaxParseDepth = 200;

// Throws Error "template line N: ..." on a syntax error, an unknown tag, filter or test.
Body parse_template(std::string_view source);

}  // namespace moe::jinja
