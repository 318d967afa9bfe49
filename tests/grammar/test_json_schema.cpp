// serve/grammar/json_schema: JSON Schema -> grammar, through the byte-level recognizer. For each
// supported keyword, documents that must be accepted and ones that must not; the whitespace
// policies; and the errors (naming keyword and JSON pointer) for what is not supported.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "serve/grammar/json_schema.h"
#include "serve/grammar/matcher.h"

namespace moe::grammar {
namespace {

using json = nlohmann::ordered_json;

Grammar compile(std::string_view schema, const JsonSchemaOptions& o = {}) { return json_schema_grammar(json::parse(schema), o); }

JsonSchemaOptions flexible(int max_ws = 20) {
  JsonSchemaOptions o;
  o.whitespace = JsonSchemaOptions::Whitespace::flexible;
  o.max_whitespace = max_ws;
  return o;
}

void expect_docs(std::string_view schema, const std::vector<std::string>& yes, const std::vector<std::string>& no,
                 const JsonSchemaOptions& o = {}) {
  const Grammar g = compile(schema, o);
  for (const auto& d : yes) EXPECT_TRUE(accepts(g, d)) << schema << "\nshould accept: " << d;
  for (const auto& d : no) EXPECT_FALSE(accepts(g, d)) << schema << "\nshould reject: " << d;
}

void expect_error(std::string_view schema, const std::vector<std::string>& parts, const JsonSchemaOptions& o = {}) {
  try {
    (void)compile(schema, o);
    ADD_FAILURE() << "no error for " << schema;
  } catch (const GrammarError& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

const std::vector<std::string> kAnyJson = {
    "null", "true", "false", "0", "-1", "3.25", "1e10", "-0.5E-3", "2E+2", "\"\"", "\"text\"", "[]", "{}",
    "[1, \"a\", null, [true], {\"k\": {}}]", "{\"a\":1,\"b\":[{\"c\":\"d\"}]}", "\"\\u00e9\\uD83D\\ude00\\n\\\"\\\\\\/\""};
const std::vector<std::string> kNotJson = {
    "", "nul", "01", "1.", ".5", "+1", "1e", "-", "[1,]", "[,1]", "{\"a\"}", "{\"a\":1,}", "{a:1}", "'a'",
    "\"\\x\"", "\"\\u12G4\"", "\"a\nb\"", "\"tab\there\"", "[1] [2]", "NaN", "\"unterminated"};

TEST(JsonSchema, AnyValue) {
  for (const char* schema : {"{}", "true", "{\"description\": \"anything\", \"title\": \"T\"}"})
    expect_docs(schema, kAnyJson, kNotJson);
  expect_docs("{}", {"\"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80\""}, {"\"\xC3\"", "\"\xED\xA0\x80\""});  // invalid UTF-8, surrogate
}

TEST(JsonSchema, ScalarTypes) {
  expect_docs(R"({"type": "string"})", {"\"\"", "\"a b\"", "\"\\\"q\\\"\"", "\"\\u00E9\\u00e9\"", "\"\xE4\xB8\xAD\""},
              {"1", "null", "\"a", "\"\\\"", "\"\\u00\""});
  expect_docs(R"({"type": "number"})", {"0", "-0", "12.5", "1e5", "1E-5", "-2.5e+10", "7"}, {"01", "1.", "\"1\"", "1e", "--1"});
  expect_docs(R"({"type": "integer"})", {"0", "-7", "123456789012345678901234567890"}, {"1.0", "1e3", "01", "-", "\"1\""});
  expect_docs(R"({"type": "boolean"})", {"true", "false"}, {"True", "1", "null"});
  expect_docs(R"({"type": "null"})", {"null"}, {"\"null\"", "0"});
  expect_docs(R"({"type": ["string", "null"]})", {"\"x\"", "null"}, {"1", "[]"});
  expect_docs(R"({"type": "string", "nullable": true})", {"\"x\"", "null"}, {"1"});
}

TEST(JsonSchema, CompactWhitespace) {
  const char* schema = R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "array"}}, "required": ["a", "b"]})";
  // json.dumps(x) and json.dumps(x, separators=(",", ":")).
  expect_docs(schema, {"{\"a\": 1, \"b\": [1, 2]}", "{\"a\":1,\"b\":[1,2]}", "{\"a\": 1,\"b\":[1, 2]}"},
              {"{ \"a\": 1, \"b\": []}", "{\"a\" : 1, \"b\": []}", "{\"a\":  1, \"b\": []}", "{\"a\": 1, \"b\": [] }",
               "{\"a\":1,\n\"b\":[]}", " {\"a\":1,\"b\":[]}", "{\"a\":1,\"b\":[]} ", "{\"a\":1,\"b\":[ ]}"});
}

TEST(JsonSchema, FlexibleWhitespace) {
  const char* schema = R"({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "array", "items": {"type": "integer"}}}, "required": ["a"]})";
  expect_docs(schema,
              {"{\"a\":1}", "\n{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2\n  ]\n}\n", "{ \"a\" : 1 , \"b\" : [ ] }", "\t{\"a\":1}\r\n"},
              {"{\"a\":1,}", "{\"b\":[]}", "{\"a\"\n:\n1 \"b\":[]}"}, flexible());
  expect_docs(schema, {"{  \"a\":1}"}, {"{   \"a\":1}"}, flexible(2));  // at most max_whitespace in a row
  expect_docs("{}", {" [ 1 , { \"x\" : null } ] "}, {"[1 2]"}, flexible());
}

TEST(JsonSchema, ObjectProperties) {
  const char* schema = R"({"type": "object", "properties": {
      "name": {"type": "string"}, "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
      "required": ["name"]})";
  expect_docs(schema,
              {"{\"name\": \"x\"}", "{\"name\": \"x\", \"age\": 3}", "{\"name\": \"x\", \"tags\": [\"a\"]}",
               "{\"name\": \"x\", \"age\": 3, \"tags\": []}"},
              {"{}", "{\"age\": 3}",                                  // missing required
               "{\"age\": 3, \"name\": \"x\"}",                       // keys out of `properties` order
               "{\"name\": \"x\", \"other\": 1}",                     // undeclared key
               "{\"name\": 1}", "{\"name\": \"x\", \"age\": \"3\"}",  // wrong types
               "{\"name\": \"x\",}", "{,\"name\": \"x\"}", "{\"name\": \"x\", \"name\": \"y\"}", "[]", "\"x\""});
  // Every member optional: the first present one has no comma before it.
  expect_docs(R"({"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}}})",
              {"{}", "{\"a\": 1}", "{\"b\": 2}", "{\"c\": 3}", "{\"a\": 1, \"c\": 3}", "{\"b\": 2, \"c\": 3}", "{\"a\":1,\"b\":2,\"c\":3}"},
              {"{,\"b\": 2}", "{\"a\": 1,}", "{\"a\": 1\"b\": 2}", "{\"c\": 3, \"a\": 1}"});
  // A required member after optional ones.
  expect_docs(R"({"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["b"]})",
              {"{\"b\": 2}", "{\"a\": 1, \"b\": 2}"}, {"{\"a\": 1}", "{}", "{, \"b\": 2}"});
  // A property with the schema false must not appear.
  expect_docs(R"({"properties": {"a": false, "b": {"type": "null"}}})", {"{}", "{\"b\": null}"}, {"{\"a\": 1}"});
}

TEST(JsonSchema, ObjectKeysNeedingEscapes) {
  expect_docs(R"({"properties": {"say \"hi\"": {"const": 1}, "tab\tkey": {"const": 2}, "\u00e9": {"const": 3}}, "required": ["say \"hi\"", "tab\tkey", "\u00e9"]})",
              {"{\"say \\\"hi\\\"\": 1, \"tab\\tkey\": 2, \"\xC3\xA9\": 3}"}, {"{\"say \"hi\"\": 1, \"tab\\tkey\": 2, \"\xC3\xA9\": 3}"});
}

TEST(JsonSchema, AnyObject) {
  expect_docs(R"({"type": "object"})", {"{}", "{\"a\": 1}", "{\"a\": [1, {\"b\": null}], \"c\": \"d\"}"}, {"[]", "1", "{\"a\"}", "{1: 2}"});
  const Grammar g = json_object_grammar();
  EXPECT_TRUE(accepts(g, "{\"x\": {\"y\": [1, 2.5e3, \"z\"]}}"));
  EXPECT_FALSE(accepts(g, "[1]"));
  EXPECT_FALSE(accepts(g, "\"s\""));
  const Grammar f = json_object_grammar(flexible());
  EXPECT_TRUE(accepts(f, "\n {\n \"x\" : 1 }\n"));
}

TEST(JsonSchema, AdditionalProperties) {
  const char* closed = R"({"properties": {"a": {"type": "integer"}}, "additionalProperties": false})";
  expect_docs(closed, {"{}", "{\"a\": 1}"}, {"{\"b\": 1}", "{\"a\": 1, \"b\": 1}"});
  const char* open = R"({"properties": {"a": {"type": "integer"}, "ab": {"type": "integer"}}, "required": ["a"], "additionalProperties": true})";
  expect_docs(open,
              {"{\"a\": 1}", "{\"a\": 1, \"x\": [1]}", "{\"a\": 1, \"ab\": 2, \"abc\": null, \"\": {}}", "{\"a\": 1, \"b\": 1, \"a2\": 2}",
               "{\"a\":1,\"\xC3\xA9\":2}"},
              {"{\"x\": 1}", "{\"x\": 1, \"a\": 1}",  // declared ones come first
               "{\"a\": 1, \"a\": 2}", "{\"a\": 1, \"ab\": 2, \"ab\": 3}", "{\"a\": 1, \"x\": 1, \"ab\": 3}",
               "{\"a\": 1, \"x\": 1,}"});
  const char* typed = R"({"properties": {"id": {"type": "string"}}, "required": ["id"], "additionalProperties": {"type": "integer"}})";
  expect_docs(typed, {"{\"id\": \"x\", \"n\": 1, \"m\": 2}"}, {"{\"id\": \"x\", \"n\": \"1\"}"});
  // A map: no properties, typed values, any keys.
  expect_docs(R"({"type": "object", "additionalProperties": {"type": "boolean"}})",
              {"{}", "{\"a\": true}", "{\"a\": true, \"b\": false}"}, {"{\"a\": 1}"});
  // `required` naming undeclared keys: their values follow additionalProperties (or are anything).
  expect_docs(R"({"type": "object", "required": ["x"]})", {"{\"x\": [1]}", "{\"x\": 1, \"y\": 2}"}, {"{}", "{\"y\": 2}"});
  expect_docs(R"({"properties": {"a": {"type": "integer"}}, "required": ["z"]})", {"{\"z\": {}}", "{\"a\": 1, \"z\": null}"}, {"{\"a\": 1}"});
  expect_docs(R"({"required": ["z"], "additionalProperties": {"type": "string"}})", {"{\"z\": \"s\"}"}, {"{\"z\": 1}"});
}

TEST(JsonSchema, Arrays) {
  expect_docs(R"({"type": "array", "items": {"type": "integer"}})", {"[]", "[1]", "[1, 2, 3]", "[1,2]"},
              {"[1,]", "[,1]", "[1 2]", "[\"a\"]", "[1.5]", "{}"});
  expect_docs(R"({"type": "array"})", {"[]", "[1, \"a\", [null]]"}, {"[1,]"});
  expect_docs(R"({"type": "array", "items": {"type": "array", "items": {"type": "array", "items": {"type": "boolean"}}}})",
              {"[[[true]], [], [[], [false, true]]]"}, {"[[true]]", "[[[1]]]"});
  expect_docs(R"({"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3})",
              {"[\"a\", \"b\"]", "[\"a\",\"b\",\"c\"]"}, {"[]", "[\"a\"]", "[\"a\", \"b\", \"c\", \"d\"]"});
  expect_docs(R"({"type": "array", "minItems": 1})", {"[1]", "[1, 2]"}, {"[]"});
  expect_docs(R"({"type": "array", "maxItems": 0})", {"[]"}, {"[1]"});
  // prefixItems, then items.
  const char* tuple = R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false})";
  expect_docs(tuple, {"[]", "[\"a\"]", "[\"a\", 1]"}, {"[1]", "[\"a\", \"b\"]", "[\"a\", 1, 2]"});
  const char* tuple_min = R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "minItems": 2, "items": {"type": "boolean"}})";
  expect_docs(tuple_min, {"[\"a\", 1]", "[\"a\", 1, true, false]"}, {"[\"a\"]", "[\"a\", 1, 2]", "[\"a\", 1,]"});
  expect_docs(R"({"prefixItems": [{"const": "x"}], "maxItems": 3})", {"[]", "[\"x\"]", "[\"x\", 1, {}]"}, {"[\"x\", 1, 2, 3]", "[1]"});
  expect_docs(R"({"prefixItems": [{"const": 1}, {"const": 2}, {"const": 3}], "maxItems": 2})", {"[1, 2]", "[1]"}, {"[1, 2, 3]"});
  expect_docs(R"({"items": [{"type": "integer"}, {"type": "string"}]})", {"[1, \"a\"]", "[1, \"a\", null]"}, {"[\"a\"]"});  // draft-4 tuple
  expect_docs(R"({"type": "array", "uniqueItems": false})", {"[1, 1]"}, {});
  expect_docs(R"({"type": "array", "items": {"type": "integer"}})", {"[\n  1,\n  2\n]"}, {}, flexible());
}

TEST(JsonSchema, EnumAndConst) {
  expect_docs(R"({"enum": ["red", "green", 3, null, true, {"a": [1, 2]}]})",
              {"\"red\"", "\"green\"", "3", "null", "true", "{\"a\": [1, 2]}", "{\"a\":[1,2]}"},
              {"\"blue\"", "\"Red\"", "4", "false", "{\"a\": [2, 1]}", "3.0"});
  expect_docs(R"({"type": "string", "enum": ["a", 1, "b"]})", {"\"a\"", "\"b\""}, {"1"});  // `type` filters
  expect_docs(R"({"const": "fixed"})", {"\"fixed\""}, {"\"other\""});
  expect_docs(R"({"const": {"x": 1, "y": [true, null]}})", {"{\"x\": 1, \"y\": [true, null]}"}, {"{\"y\": [true, null], \"x\": 1}"});
  expect_docs(R"({"const": {"x": 1}})", {" { \"x\" : 1 } "}, {}, flexible());
  expect_docs(R"({"enum": ["quote\"d", "caf\u00e9", "line\nbreak"]})", {"\"quote\\\"d\"", "\"caf\xC3\xA9\"", "\"line\\nbreak\""},
              {"\"quote\"d\""});
  expect_docs(R"({"enum": [1.5, -2, 1e100]})", {"1.5", "-2", "1e+100"}, {"2"});
}

TEST(JsonSchema, StringLength) {
  const char* schema = R"({"type": "string", "minLength": 2, "maxLength": 4})";
  expect_docs(schema, {"\"ab\"", "\"abcd\"", "\"\xC3\xA9\xC3\xA9\"", "\"\\n\\t\"", "\"\\u00e9x\"", "\"\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\""},
              {"\"a\"", "\"abcde\"", "\"\xC3\xA9\"", "\"\\n\"", "\"\"", "\"12345\""});
  expect_docs(R"({"type": "string", "maxLength": 0})", {"\"\""}, {"\"a\""});
  expect_docs(R"({"minLength": 3})", {"\"abc\"", "\"abcdefgh\""}, {"\"ab\"", "123"});  // implies string
}

TEST(JsonSchema, Pattern) {
  expect_docs(R"({"type": "string", "pattern": "^[a-z]+-\\d{2}$"})", {"\"abc-12\""}, {"\"abc-123\"", "\"Abc-12\"", "\"x abc-12\"", "\"\""});
  // Unanchored: the pattern may match anywhere in the value (JSON Schema uses search).
  expect_docs(R"({"type": "string", "pattern": "ab+c"})", {"\"abbc\"", "\"xx abc yy\"", "\"\\\"abc\\n\""}, {"\"ac\"", "\"a b c\""});
  expect_docs(R"({"pattern": "^\\d+"})", {"\"12abc\"", "\"1\""}, {"\"a1\""});
  // The value is constrained, the model writes its escaped form.
  expect_docs(R"({"type": "string", "pattern": "^say \"(hi|bye)\"\\n$"})", {"\"say \\\"hi\\\"\\n\""}, {"\"say \"hi\"\\n\"", "\"say \\\"hi\\\"\n\""});
  expect_docs(R"({"type": "string", "pattern": "^[^\"]*$"})", {"\"no quotes\\\\ here\""}, {"\"a\\\"b\""});
}

TEST(JsonSchema, Formats) {
  expect_docs(R"({"type": "string", "format": "date"})",
              {"\"2024-01-31\"", "\"2024-02-29\"", "\"2000-02-29\"", "\"1999-12-01\"", "\"0001-01-01\"", "\"2023-04-30\""},
              {"\"2023-02-29\"", "\"1900-02-29\"", "\"2023-13-01\"", "\"2023-00-10\"", "\"2023-04-31\"", "\"2023-01-32\"", "\"0000-01-01\"",
               "\"2023-1-01\"", "\"20230101\"", "2023"});
  expect_docs(R"({"format": "date-time"})",
              {"\"2024-05-06T07:08:09Z\"", "\"2024-05-06T23:59:59.123456+05:30\"", "\"2024-02-29T00:00:00-00:00\""},
              {"\"2024-05-06 07:08:09Z\"", "\"2024-05-06T24:00:00Z\"", "\"2024-05-06T07:08:09\"", "\"2024-05-06T07:60:00Z\"",
               "\"2024-05-06T07:08:09.Z\"", "\"2023-02-29T00:00:00Z\""});
  expect_docs(R"({"type": "string", "format": "time"})", {"\"07:08:09Z\"", "\"23:59:59.5-01:00\""}, {"\"7:08:09Z\"", "\"07:08:09\""});
  expect_docs(R"({"type": "string", "format": "uuid"})", {"\"123e4567-e89b-12d3-a456-426614174000\"", "\"123E4567-E89B-12D3-A456-426614174000\""},
              {"\"123e4567e89b12d3a456426614174000\"", "\"123e4567-e89b-12d3-a456-42661417400\"", "\"g23e4567-e89b-12d3-a456-426614174000\""});
  expect_docs(R"({"type": "string", "format": "email"})", {"\"a.b+c@example.com\"", "\"x@sub-d.example.co.uk\""},
              {"\"no-at.example.com\"", "\"a@b\"", "\"a@-b.com\"", "\"a..b@c.com\"", "\"@c.com\"", "\"a b@c.com\""});
  expect_docs(R"({"type": "string", "format": "ipv4"})", {"\"192.168.0.1\"", "\"255.255.255.255\"", "\"0.0.0.0\""},
              {"\"256.1.1.1\"", "\"01.1.1.1\"", "\"1.1.1\""});
}

// Integer ranges against brute force over [-1200, 1200].
TEST(JsonSchema, IntegerRanges) {
  struct Case {
    const char* schema;
    std::optional<int64_t> lo, hi;
  };
  const std::vector<Case> cases = {
      {R"({"type": "integer", "minimum": 0})", 0, std::nullopt},
      {R"({"type": "integer", "minimum": 1, "maximum": 100})", 1, 100},
      {R"({"type": "integer", "minimum": -5, "maximum": 5})", -5, 5},
      {R"({"type": "integer", "minimum": -1000, "maximum": -37})", -1000, -37},
      {R"({"type": "integer", "minimum": 17, "maximum": 1099})", 17, 1099},
      {R"({"type": "integer", "minimum": 99, "maximum": 1000})", 99, 1000},
      {R"({"type": "integer", "minimum": 123, "maximum": 987})", 123, 987},
      {R"({"type": "integer", "maximum": 42})", std::nullopt, 42},
      {R"({"type": "integer", "maximum": -42})", std::nullopt, -42},
      {R"({"type": "integer", "minimum": -77})", -77, std::nullopt},
      {R"({"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 20})", 11, 19},
      {R"({"type": "integer", "minimum": 1.5, "maximum": 9.5})", 2, 9},
      {R"({"type": "integer", "exclusiveMinimum": -1.5, "exclusiveMaximum": 3.0})", -1, 2},
      {R"({"type": "integer", "minimum": 5, "exclusiveMinimum": true, "maximum": 10, "exclusiveMaximum": true})", 6, 9},  // draft 4
      {R"({"type": "integer", "minimum": 3, "exclusiveMinimum": 5})", 6, std::nullopt},  // the tighter bound wins
      {R"({"type": "integer", "minimum": 0, "maximum": 0})", 0, 0},
      {R"({"minimum": 10, "maximum": 12})", 10, 12},  // implies integer
  };
  for (const auto& c : cases) {
    const Grammar g = compile(c.schema);
    for (int64_t n = -1200; n <= 1200; ++n) {
      const bool in = (!c.lo || n >= *c.lo) && (!c.hi || n <= *c.hi);
      ASSERT_EQ(accepts(g, std::to_string(n)), in) << c.schema << " n=" << n;
    }
    EXPECT_FALSE(accepts(g, "-0"));
    EXPECT_FALSE(accepts(g, "007"));
    EXPECT_FALSE(accepts(g, "5.0"));
  }
  expect_docs(R"({"type": "integer", "minimum": -9223372036854775807, "maximum": 9223372036854775807})",
              {"-9223372036854775807", "9223372036854775807", "0"}, {"9223372036854775808", "-9223372036854775808"});
  expect_docs(R"({"type": "integer", "minimum": 1000000000000})", {"1000000000000", "99999999999999999999"}, {"999999999999"});
  expect_docs(R"({"type": "integer", "minimum": 10, "maximum": 20})", {"15"}, {"5", "25"}, flexible());
}

TEST(JsonSchema, Combinators) {
  expect_docs(R"({"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 1}]})", {"1", "\"a\""}, {"\"ab\"", "null"});
  expect_docs(R"({"oneOf": [{"const": 1}, {"const": "one"}], "discriminator": {"propertyName": "x"}})", {"1", "\"one\""}, {"2"});
  // allOf of object schemas merges them.
  const char* merged = R"({"allOf": [
      {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
      {"properties": {"b": {"type": "string"}}, "required": ["b"]}]})";
  expect_docs(merged, {"{\"a\": 1, \"b\": \"x\"}"}, {"{\"a\": 1}", "{\"b\": \"x\"}", "{\"b\": \"x\", \"a\": 1}"});
  // One branch (pydantic's `allOf: [{$ref}]` with a description) is that branch.
  expect_docs(R"({"$defs": {"P": {"type": "integer", "maximum": 5}}, "allOf": [{"$ref": "#/$defs/P"}], "description": "d"})",
              {"5", "-3"}, {"6", "\"x\""});
  expect_docs(R"({"allOf": [{"type": "string", "format": "uuid"}, true, {"title": "t"}]})", {"\"123e4567-e89b-12d3-a456-426614174000\""}, {"\"x\""});
  // Keywords from different branches combine; types intersect.
  expect_docs(R"({"allOf": [{"type": "string"}, {"maxLength": 2}]})", {"\"ab\""}, {"\"abc\"", "1"});
  expect_docs(R"({"allOf": [{"type": ["number", "string"]}, {"type": "integer", "minimum": 1}]})", {"1", "7"}, {"0", "1.5", "\"a\""});
  // The same property in two branches: both schemas apply.
  expect_docs(R"({"allOf": [{"properties": {"n": {"type": "integer"}}, "required": ["n"]}, {"properties": {"n": {"minimum": 3}}}]})",
              {"{\"n\": 3}"}, {"{\"n\": 2}"});
}

TEST(JsonSchema, Refs) {
  const char* defs = R"({"$defs": {"Point": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"]}},
      "type": "array", "items": {"$ref": "#/$defs/Point"}})";
  expect_docs(defs, {"[]", "[{\"x\": 1, \"y\": 2}, {\"x\": 3, \"y\": 4}]"}, {"[{\"x\": 1}]"});
  expect_docs(R"({"definitions": {"S": {"type": "string"}}, "properties": {"s": {"$ref": "#/definitions/S"}}, "required": ["s"]})",
              {"{\"s\": \"v\"}"}, {"{\"s\": 1}"});
  // A recursive tree through "#".
  const char* tree = R"({"type": "object", "properties": {"value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#"}}}, "required": ["value"]})";
  expect_docs(tree, {"{\"value\": 1}", "{\"value\": 1, \"children\": [{\"value\": 2, \"children\": [{\"value\": 3, \"children\": []}]}, {\"value\": 4}]}"},
              {"{\"value\": 1, \"children\": [{}]}", "{\"value\": 1, \"children\": [{\"value\": \"x\"}]}"});
  // A linked list through $defs, nullable.
  const char* list = R"({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {"v": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}}, "required": ["v", "next"]}}})";
  expect_docs(list, {"{\"v\": 1, \"next\": null}", "{\"v\": 1, \"next\": {\"v\": 2, \"next\": null}}"}, {"{\"v\": 1, \"next\": {\"v\": 2}}"});
  EXPECT_TRUE(accepts_prefix(compile(list), "{\"v\": 1, \"next\": {\"v\": 2, \"next\": {\"v\""));
  EXPECT_FALSE(accepts_prefix(compile(list), "{\"v\": 1, \"next\": {\"x\""));
}

TEST(JsonSchema, Prefixes) {
  const Grammar g = compile(R"({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]})");
  for (const char* p : {"", "{", "{\"", "{\"a", "{\"a\":", "{\"a\": \"x", "{\"a\": \"x\""}) EXPECT_TRUE(accepts_prefix(g, p)) << p;
  for (const char* p : {"[", "{\"b", "{\"a\" ", "{\"a\": 1"}) EXPECT_FALSE(accepts_prefix(g, p)) << p;
}

TEST(JsonSchema, AddToOwnGrammar) {
  // A tool-call wrapper around two schema values and a plain JSON value.
  Builder b;
  const json args = json::parse(R"({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]})");
  const RuleId a = add_json_schema(b, args), v = add_json_value(b);
  const Grammar g = b.build(b.rule("root", seq({lit("<call>"), ref(a), lit("</call><raw>"), ref(v), lit("</raw>")})));
  EXPECT_TRUE(accepts(g, "<call>{\"q\": \"x\"}</call><raw>[1, {}]</raw>"));
  EXPECT_FALSE(accepts(g, "<call>{}</call><raw>1</raw>"));
}

TEST(JsonSchema, UnsupportedKeywords) {
  for (const char* kw : {"if", "then", "else", "not", "patternProperties", "multipleOf", "minProperties", "maxProperties",
                         "propertyNames", "dependentRequired", "dependentSchemas", "unevaluatedProperties", "contains",
                         "additionalItems", "$anchor", "$dynamicRef", "dependencies"}) {
    const std::string schema = std::string(R"({"properties": {"a": {"type": "object", ")") + kw + R"(": {}}}})";
    expect_error(schema, {"unsupported keyword '" + std::string(kw) + "'", "at /properties/a"});
  }
  expect_error(R"({"type": "integer", "multipleOf": 2})", {"'multipleOf'", "at the root"});
  expect_error(R"({"items": {"properties": {"a~b/c": {"not": {}}}}})", {"'not'", "/items/properties/a~0b~1c"});
  expect_error(R"({"type": "array", "uniqueItems": true})", {"uniqueItems"});
}

TEST(JsonSchema, Errors) {
  expect_error("false", {"schema 'false' matches nothing"});
  expect_error(R"({"properties": {"a": false}, "required": ["a"]})", {"'a'", "false"});
  expect_error(R"({"anyOf": [{"type": "string"}, false]})", {"'false'", "/anyOf/1"});
  expect_error(R"({"type": "number", "minimum": 0})", {"minimum/maximum on non-integer numbers is not supported"});
  expect_error(R"({"type": "integer", "minimum": 5, "maximum": 4})", {"no integer"});
  expect_error(R"({"type": "integer", "minimum": 1e30})", {"'minimum'", "outside the supported integer range"});
  expect_error(R"({"type": "integer", "maximum": "5"})", {"'maximum' must be a number"});
  expect_error(R"({"type": "decimal"})", {"unknown type \"decimal\""});
  expect_error(R"({"type": "string", "format": "uri"})", {"unsupported format 'uri'"});
  expect_error(R"({"type": "string", "pattern": "(a)\\1"})", {"'pattern'", "backreference", "at the root"});
  expect_error(R"({"type": "string", "pattern": "^a$", "maxLength": 3})", {"cannot be combined"});
  expect_error(R"({"type": "string", "minLength": -1})", {"'minLength' must be a non-negative integer"});
  expect_error(R"({"type": "string", "minLength": 5, "maxLength": 2})", {"'maxLength' is below 'minLength'"});
  expect_error(R"({"type": "array", "minItems": 3, "maxItems": 2})", {"minItems"});
  expect_error(R"({"prefixItems": [{}], "items": false, "minItems": 2})", {"minItems"});
  expect_error(R"({"enum": []})", {"'enum' must be a non-empty array"});
  expect_error(R"({"type": "string", "enum": [1, 2]})", {"enum"});
  expect_error(R"({"const": 1, "enum": [2]})", {"'const' is not one of the 'enum' values"});
  expect_error(R"({"properties": {"a": {}}, "required": ["b"], "additionalProperties": false})", {"'b'", "additionalProperties: false"});
  expect_error(R"({"$ref": "http://example.com/s.json"})", {"only local $refs"});
  expect_error(R"({"$ref": "#/$defs/Missing"})", {"'#/$defs/Missing' does not resolve"});
  expect_error(R"({"$ref": "#/$defs/A", "$defs": {"A": {"type": "string"}}, "minLength": 1})", {"'minLength' beside '$ref'"});
  expect_error(R"({"anyOf": [{"type": "string"}], "type": "string"})", {"'type' beside 'anyOf'"});
  expect_error(R"({"allOf": [{"type": "string", "maxLength": 3}, {"maxLength": 4}]})", {"allOf", "'maxLength' differs"});
  expect_error(R"({"allOf": [{"type": "string"}, {"type": ["integer", "null"]}]})", {"allOf", "nothing in common"});
  expect_error(R"({"enum": ["a", "bb"], "maxLength": 1})", {"'maxLength' beside 'enum'"});
  expect_error(R"({"allOf": [{"properties": {"a": {}}, "additionalProperties": false}, {"properties": {"b": {}}}]})", {"allOf", "'b'"});
  expect_error(R"({"properties": 3})", {"'properties' must be an object"});
  expect_error(R"([1])", {"a schema must be an object or a boolean"});
  expect_error(R"({"$ref": "#"})", {"grammar:"});  // matches nothing: Builder says so
  expect_error(R"({"type": "string", "maxLength": 5000000})", {"'maxLength'", "too large"});
}

TEST(JsonSchema, Limits) {
  // Nesting deeper than max_depth.
  json deep = json::object();
  json* at = &deep;
  for (int i = 0; i < 70; ++i) {
    (*at)["type"] = "array";
    at = &(*at)["items"];
    *at = json::object();
  }
  try {
    (void)json_schema_grammar(deep);
    ADD_FAILURE() << "no depth error";
  } catch (const GrammarError& e) {
    EXPECT_NE(std::string(e.what()).find("nest deeper than 64"), std::string::npos) << e.what();
  }
  JsonSchemaOptions o;
  o.max_depth = 100;
  EXPECT_TRUE(accepts(json_schema_grammar(deep, o), std::string(70, '[') + std::string(70, ']')));
  // Rule budget.
  o = {};
  o.max_rules = 500;
  expect_error(R"({"type": "array", "maxItems": 1000})", {"rules"}, o);
  expect_docs(R"({"type": "array", "maxItems": 100})", {"[]"}, {}, o);
  // A large but allowed length bound compiles.
  expect_docs(R"({"type": "string", "maxLength": 5000})", {"\"" + std::string(5000, 'x') + "\""}, {"\"" + std::string(5001, 'x') + "\""});
}

}  // namespace
}  // namespace moe::grammar
