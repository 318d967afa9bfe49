// A regular-expression subset compiled to the grammar IR: response_format `regex` and JSON
// Schema `pattern`.
//
// Supported: literals (UTF-8), `.`, classes `[a-z]` / `[^...]` (with escapes inside),
// `\d \w \s \D \W \S`,
// `\n \t \r \f \v \0 \xHH \uXXXX \u{X...} \cX` and escaped punctuation, groups `( )` and
// `(?: )`, alternation, quantifiers `* + ? {n} {n,} {n,m} {,m}` (lazy forms such as `*?` mean
// the same here: a grammar constrains the set of strings, not which match is preferred), `^`
// at the start and `$` at the end of the pattern or of a top-level alternative.
// Unsupported (GrammarError naming the construct and its byte offset): backreferences,
// lookaround, named groups, inline flags, atomic groups, possessive quantifiers, `\b \B`,
// `\p{..}`, anchors anywhere else. Limits: group nesting 100, counts in {n,m} up to 10000.
// Where ECMAScript (JSON Schema's dialect) and Python's re (jsonschema's) disagree, only text
// both accept is produced: `.` is any character but \n \r U+2028 U+2029; \d and \w are ASCII;
// \s is the Unicode spaces both know (not U+FEFF); \D is no Unicode decimal digit; \W is ASCII
// only; \S is no space of either.
#pragma once
#include <string_view>

#include "serve/grammar/grammar.h"

namespace moe::grammar {

struct RegexOptions {
  // true: that side of the pattern is matched against the very start/end of the string, as if
  // the pattern began with ^ / ended with $ (what a `regex` response format means).
  // false: search semantics (JSON Schema `pattern`): unless the pattern (or a top-level
  // alternative) has the anchor, that side is padded with "any characters".
  bool anchored_start = true;
  bool anchored_end = true;
  // The expression produces the JSON-string-escaped text (no surrounding quotes) of the strings
  // the pattern matches: the model writes the escaped form of a value the pattern constrains.
  // One form per character: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other controls below
  // 0x20 as `\u00xx` (lowercase hex); everything else raw UTF-8. Padding for an unanchored side
  // accepts any JSON string content (every escape form).
  bool json_string = false;
};

Expr regex_expr(std::string_view pattern, const RegexOptions& options = {});
// The pattern matched against a whole text (anchors optional, ignored).
Grammar regex_grammar(std::string_view pattern);

// One character of a JSON string's content in any written form: a raw scalar value other than
// `"`, `\` and controls, or an escape (`\" \\ \/ \b \f \n \r \t \uXXXX`, hex in either case).
Expr json_string_char();

}  // namespace moe::grammar
