// JSON Schema -> grammar: response_format json_schema / json_object and tool-call arguments.
// Every text the grammar accepts is JSON that validates under the schema (a subset of the
// valid documents: one key order, canonical forms where noted); a schema we cannot honour that
// way is a GrammarError naming the keyword and its JSON pointer, never a silently looser grammar.
//
// Whitespace (JsonSchemaOptions::whitespace):
//   compact   no whitespace, except that `:` and `,` may each be followed by one space, so both
//             json.dumps(x) and json.dumps(x, separators=(",", ":")) texts are reachable. The
//             root is the value alone.
//   flexible  [ \t\n\r]{0,max_whitespace} between all structural tokens, and before and after
//             the root value.
// Lexical forms: strings are `"` (any scalar value except `"`, `\` and controls, or an escape
// \" \\ \/ \b \f \n \r \t \uXXXX, hex in any case; a surrogate pair written as two escapes is one
// character, a lone surrogate escape is refused) `"`; declared keys, enum/const values and
// pattern-constrained strings are written in one form (raw UTF-8, the escapes JSON requires); numbers
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, integers -?(0|[1-9][0-9]*). Digit runs are
// unbounded (max_tokens bounds the output).
//
// Keywords:
//   type (a name or a list; without `type` the kind is inferred from the other keywords, e.g.
//   `properties` -> object, `minimum` -> integer; else any value), enum, const (values written structurally with the whitespace policy; an enum
//   value whose JSON type `type` excludes is dropped; no other keyword beside them), anyOf,
//   oneOf (as anyOf: the branches are assumed disjoint), allOf (one branch: that branch;
//   several: merged into one schema: properties and required unite, types intersect, other
//   keywords may appear in one branch only or agree),
//   $ref (local: "#", "#/$defs/..", "#/definitions/..", any JSON pointer into the root schema;
//   recursion allowed), nullable (OpenAPI), boolean schemas (`false` is an error, except as a
//   property's schema: that key never appears). Beside $ref, anyOf or oneOf only annotations
//   and nullable may stand.
//   object: properties (keys in `properties` order; required ones always, optional ones may be
//   skipped), required (a name outside `properties` gets the additionalProperties schema or any
//   value), additionalProperties (false / true / a schema: extra members after the declared
//   ones, keys without escape sequences and never equal to a declared key). `properties`
//   without additionalProperties means only the declared keys (the output still validates);
//   neither means any object.
//   array: items (schema or false), prefixItems, minItems, maxItems, uniqueItems false.
//   string: minLength/maxLength (in code points), pattern (search semantics, anchored by its own
//   ^ / $; see regex.h; the value's escapes in their canonical form), format date, time,
//   date-time (RFC 3339), uuid, email (a plain local@domain.tld), ipv4; other formats are an
//   error. pattern, format and lengths do not combine.
//   integer: minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers; draft-4 boolean
//   exclusive flags too), within +-(2^63-1). Bounds on non-integer numbers are an error.
//   Ignored annotations: title, description, default, examples, example, $schema, $id,
//   $comment, $defs, definitions, deprecated, readOnly, writeOnly, name, discriminator,
//   contentEncoding, contentMediaType, and x-* extensions.
//   Anything else (if, not, patternProperties, multipleOf, minProperties, ...) is an error.
#pragma once
#include <cstddef>

#include <nlohmann/json.hpp>

#include "serve/grammar/grammar.h"

namespace moe::grammar {

struct JsonSchemaOptions {
  enum class Whitespace { compact, flexible };
  Whitespace whitespace = Whitespace::compact;
  int max_whitespace = 20;
  // Work bounds for schemas that come from requests.
  int max_depth = 64;            // nested subschemas; following a $ref the first time is one more
  size_t max_rules = 200000;     // Builder rules before and after unrolling repetitions
};

// A rule matching one JSON value valid under `schema` (its $refs resolve against `schema`).
RuleId add_json_schema(Builder& b, const nlohmann::ordered_json& schema, const JsonSchemaOptions& options = {});
// A rule matching any JSON value.
RuleId add_json_value(Builder& b, const JsonSchemaOptions& options = {});
// The root: the value (with leading/trailing whitespace when flexible).
Grammar json_schema_grammar(const nlohmann::ordered_json& schema, const JsonSchemaOptions& options = {});
// Any JSON object (response_format json_object).
Grammar json_object_grammar(const JsonSchemaOptions& options = {});

}  // namespace moe::grammar
