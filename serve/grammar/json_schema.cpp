#include "serve/grammar/json_schema.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "serve/grammar/json_schema_internal.h"
#include "serve/grammar/regex.h"

namespace moe::grammar {
namespace {

using json = nlohmann::ordered_json;
using detail::fail;
using detail::is_annotation;
using Ws = JsonSchemaOptions::Whitespace;

const std::set<std::string, std::less<>> kAnnotations{
    "title",    "description", "default",  "examples", "example",       "$schema",     "$id",
    "$comment", "$defs",       "definitions", "deprecated", "readOnly", "writeOnly", "name",
    "discriminator", "contentEncoding", "contentMediaType"};
const std::set<std::string, std::less<>> kKeywords{
    "type",      "properties", "required",  "additionalProperties", "enum",        "const",
    "anyOf",     "oneOf",      "allOf",     "$ref",                 "items",       "prefixItems",
    "minItems",  "maxItems",   "uniqueItems", "minLength",          "maxLength",   "pattern",
    "format",    "minimum",    "maximum",   "exclusiveMinimum",     "exclusiveMaximum", "nullable"};
const std::set<std::string, std::less<>> kTypes{"object", "array", "string", "number", "integer", "boolean", "null"};
// Without `type`, the kind a keyword implies (the output then still validates).
const std::vector<std::pair<std::string_view, std::vector<std::string_view>>> kImplied{
    {"object", {"properties", "required", "additionalProperties"}},
    {"array", {"items", "prefixItems", "minItems", "maxItems"}},
    {"string", {"minLength", "maxLength", "pattern", "format"}},
    {"integer", {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}}};
constexpr int kMaxCount = 1'000'000;  // minLength, maxItems, ...: Builder's rule limit bites first
constexpr int kMaxLiteralDepth = 256;  // nesting inside const / enum values

std::string where(const std::string& ptr) { return ptr.empty() ? "the root" : ptr; }

std::string child(const std::string& ptr, std::string_view key) {
  std::string out = ptr + "/";
  for (char c : key) out += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
  return out;
}
std::string child(const std::string& ptr, std::string_view key, size_t i) { return child(ptr, key) + fmt::format("/{}", i); }

bool is_integral(const json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::fabs(d) < 9e18 && d == std::floor(d);
}

bool type_matches(const json& v, std::string_view t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "number") return v.is_number();
  if (t == "integer") return is_integral(v);
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  return true;  // "any"
}

// Code points of valid UTF-8 `s`; nullopt otherwise.
std::optional<std::u32string> decode(std::string_view s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    const uint8_t b = uint8_t(s[i]);
    const int n = b < 0x80 ? 0 : b >= 0xC2 && b < 0xE0 ? 1 : b >= 0xE0 && b < 0xF0 ? 2 : b >= 0xF0 && b < 0xF5 ? 3 : -1;
    if (n < 0 || s.size() - i <= size_t(n)) return std::nullopt;  // n continuation bytes must follow
    char32_t v = n == 0 ? b : b & (0x3F >> n);
    for (int k = 1; k <= n; ++k) {
      if ((uint8_t(s[i + k]) & 0xC0) != 0x80) return std::nullopt;
      v = (v << 6) | (uint8_t(s[i + k]) & 0x3F);
    }
    i += size_t(n) + 1;
    out.push_back(v);
  }
  return out;
}

class Compiler {
 public:
  Compiler(Builder& b, const json* root, const JsonSchemaOptions& o) : b_(b), root_(root), o_(o) {
    if (o_.max_whitespace < 0) throw GrammarError("json_schema: max_whitespace must not be negative");
  }

  RuleId schema_rule(const json& s, const std::string& ptr, int depth) {
    Expr e = schema_expr(s, ptr, depth);
    if (e.kind == Expr::Kind::ref) return e.rule;
    return rule(ptr.empty() ? "root" : ptr, std::move(e));
  }

  // Whitespace a flexible grammar allows between tokens (nothing when compact).
  Expr ws() {
    if (o_.whitespace == Ws::compact) return empty();
    if (!ws_) {
      ByteSet s;
      for (char c : std::string_view(" \t\n\r")) s.set(uint8_t(c));
      ws_ = rule("ws", repeat(byte_set(s), 0, o_.max_whitespace));
    }
    return ref(*ws_);
  }

  RuleId any_value() {
    if (value_) return *value_;
    value_ = declare("value");
    const RuleId member = rule("member", seq({ref(string()), ws(), tok(':'), ref(*value_), ws()}));
    object_ = rule("object", seq({tok('{'), opt(seq({ref(member), star(seq({tok(','), ref(member)}))})), lit("}")}));
    const Expr elem = seq({ref(*value_), ws()});
    const RuleId array = rule("array", seq({tok('['), opt(seq({elem, star(seq({tok(','), elem}))})), lit("]")}));
    b_.define(*value_, alt({ref(*object_), ref(array), ref(string()), ref(number()), lit("true"), lit("false"), lit("null")}));
    return *value_;
  }

  RuleId any_object() {
    any_value();
    return *object_;
  }

 private:
  RuleId declare(std::string_view name) {
    if (b_.rule_count() >= o_.max_rules)
      throw GrammarError(fmt::format("json_schema: the schema needs more than {} grammar rules", o_.max_rules));
    return b_.declare(name);
  }
  RuleId rule(std::string_view name, Expr e) {
    const RuleId r = declare(name);
    b_.define(r, std::move(e));
    return r;
  }

  // A structural token and the whitespace the policy allows after it.
  Expr tok(char c) {
    if (o_.whitespace == Ws::flexible) return seq({lit(std::string(1, c)), ws()});
    if (c == ':' || c == ',') return seq({lit(std::string(1, c)), opt(lit(" "))});
    return lit(std::string(1, c));
  }

  RuleId string_char() {
    if (!char_) char_ = rule("char", json_string_char());
    return *char_;
  }
  RuleId string() {
    if (!string_) string_ = rule("string", seq({lit("\""), star(ref(string_char())), lit("\"")}));
    return *string_;
  }
  Expr int_digits() {
    ByteSet d, d19;
    d.set_range('0', '9');
    d19.set_range('1', '9');
    return seq({opt(lit("-")), alt({lit("0"), seq({byte_set(d19), star(byte_set(d))})})});
  }
  RuleId integer() {
    if (!integer_) integer_ = rule("integer", int_digits());
    return *integer_;
  }
  RuleId number() {
    if (!number_) {
      ByteSet d, e, sign;
      d.set_range('0', '9');
      e.set('e');
      e.set('E');
      sign.set('+');
      sign.set('-');
      number_ = rule("number", seq({int_digits(), opt(seq({lit("."), plus(byte_set(d))})),
                                    opt(seq({byte_set(e), opt(byte_set(sign)), plus(byte_set(d))}))}));
    }
    return *number_;
  }

  Expr schema_expr(const json& s, const std::string& ptr, int depth) {
    if (depth > o_.max_depth) fail(fmt::format("schemas nest deeper than {}", o_.max_depth), ptr);
    if (s.is_boolean()) {
      if (!s.get<bool>()) fail("schema 'false' matches nothing", ptr);
      return ref(any_value());
    }
    if (!s.is_object()) fail("a schema must be an object or a boolean", ptr);
    for (const auto& [k, v] : s.items())
      if (!is_annotation(k) && !kKeywords.contains(k)) fail(fmt::format("unsupported keyword '{}'", k), ptr);
    if (auto it = s.find("uniqueItems"); it != s.end() && (!it->is_boolean() || it->get<bool>()))
      fail("unsupported keyword 'uniqueItems' (true)", ptr);
    Expr e = core(s, ptr, depth);
    if (auto it = s.find("nullable"); it != s.end()) {
      if (!it->is_boolean()) fail("'nullable' must be a boolean", ptr);
      if (it->get<bool>()) e = alt({std::move(e), lit("null")});
    }
    return e;
  }

  // The first keyword of `s` that constrains and is not in `allowed`.
  static std::optional<std::string> other_keyword(const json& s, std::initializer_list<std::string_view> allowed) {
    for (const auto& [k, v] : s.items()) {
      if (is_annotation(k) || k == "nullable" || k == "uniqueItems") continue;
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) return k;
    }
    return std::nullopt;
  }

  Expr core(const json& s, const std::string& ptr, int depth) {
    if (s.contains("$ref")) {
      if (auto k = other_keyword(s, {"$ref"})) fail(fmt::format("keyword '{}' beside '$ref' is not supported", *k), ptr);
      return ref(resolve(s["$ref"], ptr, depth));
    }
    if (s.contains("allOf")) return all_of(s, ptr, depth);
    if (s.contains("anyOf") || s.contains("oneOf")) {
      const char* kw = s.contains("anyOf") ? "anyOf" : "oneOf";
      if (auto k = other_keyword(s, {kw})) fail(fmt::format("keyword '{}' beside '{}' is not supported", *k, kw), ptr);
      const json& list = s[kw];
      if (!list.is_array() || list.empty()) fail(fmt::format("'{}' must be a non-empty array", kw), ptr);
      std::vector<Expr> alts;
      for (size_t i = 0; i < list.size(); ++i) alts.push_back(schema_expr(list[i], child(ptr, kw, i), depth + 1));
      return alt(std::move(alts));
    }
    std::vector<std::string> types;
    bool explicit_type = false;
    if (auto it = s.find("type"); it != s.end()) {
      explicit_type = true;
      const json list = it->is_array() ? *it : json::array({*it});
      if (list.empty()) fail("'type' must not be an empty list", ptr);
      for (const auto& t : list) {
        if (!t.is_string() || !kTypes.contains(t.get<std::string>())) fail(fmt::format("unknown type {}", t.dump()), ptr);
        types.push_back(t.get<std::string>());
      }
    } else {
      for (const auto& [t, kws] : kImplied)
        for (auto kw : kws)
          if (s.contains(kw)) {
            types.emplace_back(t);
            break;
          }
      if (types.empty()) types.push_back("any");
    }
    if (s.contains("const") || s.contains("enum")) return choices(s, explicit_type ? types : std::vector<std::string>{}, ptr);
    std::vector<Expr> alts;
    for (const auto& t : types) alts.push_back(typed(s, t, ptr, depth));
    return alt(std::move(alts));
  }

  // const / enum: each value written out; values `type` excludes are dropped.
  Expr choices(const json& s, const std::vector<std::string>& types, const std::string& ptr) {
    // Values are written as given, so nothing but `type` may narrow them further.
    if (auto k = other_keyword(s, {"enum", "const", "type"}))
      fail(fmt::format("keyword '{}' beside '{}' is not supported", *k, s.contains("const") ? "const" : "enum"), ptr);
    json values;
    if (s.contains("const")) {
      values = json::array({s["const"]});
      if (s.contains("enum") && (!s["enum"].is_array() || std::find(s["enum"].begin(), s["enum"].end(), s["const"]) == s["enum"].end()))
        fail("'const' is not one of the 'enum' values", ptr);
    } else {
      values = s["enum"];
      if (!values.is_array() || values.empty()) fail("'enum' must be a non-empty array", ptr);
    }
    std::vector<Expr> alts;
    for (const auto& v : values)
      if (types.empty() || std::any_of(types.begin(), types.end(), [&](const std::string& t) { return type_matches(v, t); }))
        alts.push_back(literal(v, 0, ptr));
    if (alts.empty()) fail("no 'enum' / 'const' value has the schema's type", ptr);
    return alt(std::move(alts));
  }

  // A JSON value written with the whitespace policy.
  Expr literal(const json& v, int depth, const std::string& ptr) {
    if (depth > kMaxLiteralDepth) fail("a 'const' / 'enum' value nests too deeply", ptr);
    std::vector<Expr> parts;
    if (v.is_object()) {
      parts.push_back(tok('{'));
      for (const auto& [k, x] : v.items()) {
        if (parts.size() > 1) parts.push_back(tok(','));
        parts.push_back(seq({lit(json(k).dump()), ws(), tok(':'), literal(x, depth + 1, ptr), ws()}));
      }
      parts.push_back(lit("}"));
    } else if (v.is_array()) {
      parts.push_back(tok('['));
      for (const auto& x : v) {
        if (parts.size() > 1) parts.push_back(tok(','));
        parts.push_back(seq({literal(x, depth + 1, ptr), ws()}));
      }
      parts.push_back(lit("]"));
    } else {
      return lit(v.dump());
    }
    return seq(std::move(parts));
  }

  Expr typed(const json& s, std::string_view t, const std::string& ptr, int depth) {
    if (t == "object") return object_expr(s, ptr, depth);
    if (t == "array") return array_expr(s, ptr, depth);
    if (t == "string") return string_expr(s, ptr);
    if (t == "boolean") return alt({lit("true"), lit("false")});
    if (t == "null") return lit("null");
    if (t == "any") return ref(any_value());
    const bool bounded = s.contains("minimum") || s.contains("maximum") || s.contains("exclusiveMinimum") || s.contains("exclusiveMaximum");
    if (t == "number") {
      if (bounded) fail("minimum/maximum on non-integer numbers is not supported (use type 'integer')", ptr);
      return ref(number());
    }
    if (!bounded) return ref(integer());
    const auto [lo, hi] = detail::integer_bounds(s, where(ptr));
    if (lo && hi && *lo > *hi) fail(fmt::format("no integer lies in [{}, {}]", *lo, *hi), ptr);
    return detail::integer_range(lo, hi);
  }

  // A non-negative integer keyword (minLength, maxItems, ...); `dflt` when absent.
  static int count(const json& s, const char* kw, int dflt, const std::string& ptr) {
    auto it = s.find(kw);
    if (it == s.end()) return dflt;
    if (!is_integral(*it) || it->get<double>() < 0) fail(fmt::format("'{}' must be a non-negative integer", kw), ptr);
    if (it->get<double>() > kMaxCount) fail(fmt::format("'{}' {} is too large (the limit is {})", kw, it->dump(), kMaxCount), ptr);
    return int(it->get<double>());
  }

  Expr string_expr(const json& s, const std::string& ptr) {
    const bool pattern = s.contains("pattern"), format = s.contains("format");
    const bool length = s.contains("minLength") || s.contains("maxLength");
    if (int(pattern) + int(format) + int(length) > 1)
      fail("'pattern', 'format' and 'minLength'/'maxLength' cannot be combined", ptr);
    const Expr quote = lit("\"");
    if (pattern) {
      if (!s["pattern"].is_string()) fail("'pattern' must be a string", ptr);
      RegexOptions ro;
      ro.anchored_start = ro.anchored_end = false;  // JSON Schema patterns search
      ro.json_string = true;
      try {
        return seq({quote, regex_expr(s["pattern"].get<std::string>(), ro), quote});
      } catch (const GrammarError& e) {
        fail(fmt::format("'pattern': {}", e.what()), ptr);
      }
    }
    if (format) {
      if (!s["format"].is_string()) fail("'format' must be a string", ptr);
      auto f = detail::string_format(s["format"].get<std::string>());
      if (!f) fail(fmt::format("unsupported format '{}'", s["format"].get<std::string>()), ptr);
      return seq({quote, std::move(*f), quote});
    }
    if (length) {
      const int lo = count(s, "minLength", 0, ptr), hi = count(s, "maxLength", -1, ptr);
      if (hi >= 0 && hi < lo) fail("'maxLength' is below 'minLength'", ptr);
      return seq({quote, repeat(ref(string_char()), lo, hi), quote});
    }
    return ref(string());
  }

  Expr array_expr(const json& s, const std::string& ptr, int depth);
  Expr object_expr(const json& s, const std::string& ptr, int depth);
  RuleId extra_key(const std::vector<std::string>& declared);
  Expr all_of(const json& s, const std::string& ptr, int depth);
  void collect_parts(const json& s, const std::string& ptr, int depth, std::vector<std::pair<const json*, std::string>>& out);
  RuleId resolve(const json& r, const std::string& ptr, int depth);
  const json& follow(const json& r, const std::string& ptr);

  Builder& b_;
  const json* root_;
  JsonSchemaOptions o_;
  std::optional<RuleId> ws_, value_, object_, char_, string_, integer_, number_, key_chars_;
  std::map<std::string, RuleId> refs_;
};

// Elements: prefixItems in order, then `items`; minItems/maxItems count all of them. The
// separator goes before every element but the first, so each position is its own rule.
Expr Compiler::array_expr(const json& s, const std::string& ptr, int depth) {
  const json* prefix = nullptr;
  std::string prefix_kw = "prefixItems";
  if (auto it = s.find("prefixItems"); it != s.end()) prefix = &*it;
  auto items = s.find("items");
  if (items != s.end() && items->is_array()) {  // draft-4 tuple form
    if (prefix) fail("'items' as a list beside 'prefixItems'", ptr);
    prefix = &*items, prefix_kw = "items", items = s.end();
  }
  if (prefix && !prefix->is_array()) fail("'prefixItems' must be an array", ptr);
  const int k = prefix ? int(prefix->size()) : 0;
  int lo = count(s, "minItems", 0, ptr), hi = count(s, "maxItems", -1, ptr);
  std::optional<RuleId> item;  // nullopt: no element after the prefix
  if (items == s.end() || (items->is_boolean() && items->get<bool>())) {
    item = any_value();
  } else if (!(items->is_boolean())) {
    item = schema_rule(*items, child(ptr, "items"), depth + 1);
  }
  if (!item && (hi < 0 || hi > k)) hi = k;
  if (hi >= 0 && lo > hi) fail("no array satisfies 'minItems' / 'maxItems' (and 'items')", ptr);
  const int used = hi >= 0 ? std::min(k, hi) : k;  // prefix positions maxItems leaves room for

  const int tmin = std::max(0, lo - k), tmax = hi < 0 ? -1 : hi - k;
  Expr tail = empty();
  if (item && used == k && tmax != 0) {
    const Expr elem = seq({ref(*item), ws()});
    const Expr next = seq({tok(','), elem});
    if (k == 0) {
      Expr t = seq({elem, repeat(next, std::max(tmin - 1, 0), tmax < 0 ? -1 : tmax - 1)});
      tail = tmin == 0 ? opt(std::move(t)) : std::move(t);
    } else {
      tail = repeat(next, tmin, tmax);
    }
  }
  Expr content = std::move(tail);
  for (int j = used - 1; j >= 0; --j) {  // one rule per prefix position: no deep expressions
    const RuleId p = schema_rule((*prefix)[size_t(j)], child(ptr, prefix_kw, size_t(j)), depth + 1);
    Expr body = seq({j > 0 ? tok(',') : empty(), ref(p), ws(), std::move(content)});
    content = ref(rule("prefix", j >= lo ? opt(std::move(body)) : std::move(body)));
  }
  return seq({tok('['), std::move(content), lit("]")});
}

// Members in `properties` order. F(i, first) matches the members from i on, `first` when none
// came before (so no comma): F(i, first) = [sep] kv_i F(i+1, false) | F(i+1, first) (the second
// only when i is optional); F(n, first) is the additional members. Linear: 2(n+1) rules at most.
Expr Compiler::object_expr(const json& s, const std::string& ptr, int depth) {
  const json* props = nullptr;
  if (auto it = s.find("properties"); it != s.end()) {
    if (!it->is_object()) fail("'properties' must be an object", ptr);
    props = &*it;
  }
  std::vector<std::string> required;
  if (auto it = s.find("required"); it != s.end()) {
    if (!it->is_array()) fail("'required' must be an array of strings", ptr);
    for (const auto& r : *it) {
      if (!r.is_string()) fail("'required' must be an array of strings", ptr);
      if (std::find(required.begin(), required.end(), r.get<std::string>()) == required.end()) required.push_back(r.get<std::string>());
    }
  }
  enum class Extra { none, any, schema } extra;
  std::optional<RuleId> extra_rule;
  const auto ap = s.find("additionalProperties");
  const bool explicit_false = ap != s.end() && ap->is_boolean() && !ap->get<bool>();
  if (ap == s.end()) {
    extra = props ? Extra::none : Extra::any;
  } else if (ap->is_boolean()) {
    extra = ap->get<bool>() ? Extra::any : Extra::none;
  } else if (ap->is_object()) {
    extra = Extra::schema;
    extra_rule = schema_rule(*ap, child(ptr, "additionalProperties"), depth + 1);
  } else {
    fail("'additionalProperties' must be a boolean or a schema", ptr);
  }
  if (!props && ap == s.end() && required.empty()) return ref(any_object());
  if (extra == Extra::any) extra_rule = any_value();

  struct Entry {
    std::string key;
    RuleId value;
    bool required;
  };
  std::vector<Entry> entries;
  std::vector<std::string> declared;
  auto is_required = [&](const std::string& k) { return std::find(required.begin(), required.end(), k) != required.end(); };
  if (props)
    for (const auto& [k, v] : props->items()) {
      declared.push_back(k);
      if (v.is_boolean() && !v.get<bool>()) {  // the property must be absent
        if (is_required(k)) fail(fmt::format("required property '{}' has the schema 'false'", k), ptr);
        continue;
      }
      entries.push_back({k, schema_rule(v, child(child(ptr, "properties"), k), depth + 1), is_required(k)});
    }
  for (const auto& r : required) {
    if (props && props->contains(r)) continue;
    if (explicit_false) fail(fmt::format("required property '{}' is not allowed by additionalProperties: false", r), ptr);
    declared.push_back(r);
    entries.push_back({r, extra_rule ? *extra_rule : any_value(), true});
  }

  const size_t n = entries.size();
  // F(i, true) is reachable only while every member before i is optional.
  std::vector<bool> need_first(n + 1, false);
  for (size_t i = 0; i <= n; ++i) {
    need_first[i] = true;
    if (i < n && entries[i].required) break;
  }
  std::vector<std::array<RuleId, 2>> f(n + 1);  // [i][first]
  if (extra == Extra::none) {
    f[n][0] = f[n][1] = rule("members_end", empty());
  } else {
    const RuleId key = extra_key(declared);
    const RuleId member = rule("extra_member", seq({lit("\""), ref(key), lit("\""), ws(), tok(':'), ref(*extra_rule), ws()}));
    const Expr more = star(seq({tok(','), ref(member)}));
    f[n][0] = rule("extra_members", more);
    if (need_first[n]) f[n][1] = rule("extra_members", opt(seq({ref(member), more})));
  }
  for (size_t i = n; i-- > 0;) {
    const Entry& e = entries[i];
    const Expr kv = seq({lit(json(e.key).dump()), ws(), tok(':'), ref(e.value), ws()});
    for (int first = 0; first < 2; ++first) {
      if (first ? !need_first[i] : i == 0) continue;
      std::vector<Expr> alts{seq({first ? empty() : tok(','), kv, ref(f[i + 1][0])})};
      if (!e.required) alts.push_back(ref(f[i + 1][first]));
      f[i][first] = rule(e.key, alt(std::move(alts)));
    }
  }
  return seq({tok('{'), ref(f[0][1]), lit("}")});
}

// The text between the quotes of a key that is none of `declared`: a trie over the declared
// keys' code points, each node's rule taking any code point but its children's and then any
// text, or a child's code point and that child's rule. Keys needing escapes are left out on
// both sides (an unescaped extra key never equals one).
RuleId Compiler::extra_key(const std::vector<std::string>& declared) {
  const std::vector<CodeRange> unsafe{{0x00, 0x1F}, {'"', '"'}, {'\\', '\\'}};
  if (!key_chars_) key_chars_ = rule("key_chars", star(chars(unsafe, true)));
  struct Node {
    bool end = false;
    std::map<char32_t, size_t> kids;
  };
  std::vector<Node> trie(1);
  for (const auto& k : declared) {
    auto cps = decode(k);
    if (!cps || std::any_of(cps->begin(), cps->end(), [](char32_t c) { return c < 0x20 || c == '"' || c == '\\'; }))
      continue;
    size_t at = 0;
    for (char32_t c : *cps) {
      auto [it, fresh] = trie[at].kids.try_emplace(c, trie.size());
      if (fresh) trie.emplace_back();
      at = it->second;
    }
    trie[at].end = true;
  }
  if (trie.size() == 1) return *key_chars_;
  std::vector<RuleId> ids;
  for (size_t i = 0; i < trie.size(); ++i) ids.push_back(declare("extra_key"));
  for (size_t i = 0; i < trie.size(); ++i) {
    std::vector<Expr> alts;
    if (!trie[i].end) alts.push_back(empty());
    std::vector<CodeRange> other = unsafe;
    for (const auto& [c, kid] : trie[i].kids) {
      std::string u;
      append_utf8(u, c);
      alts.push_back(seq({lit(u), ref(ids[kid])}));
      other.push_back({c, c});
    }
    alts.push_back(seq({chars(other, true), ref(*key_chars_)}));
    b_.define(ids[i], alt(std::move(alts)));
  }
  return ids[0];
}

const json& Compiler::follow(const json& r, const std::string& ptr) {
  if (!r.is_string()) fail("'$ref' must be a string", ptr);
  const std::string ref_str = r.get<std::string>();
  if (!root_) fail("'$ref' without a root schema", ptr);
  if (ref_str == "#") return *root_;
  if (!ref_str.starts_with("#/")) fail(fmt::format("only local $refs ('#', '#/$defs/...') are supported, not '{}'", ref_str), ptr);
  try {
    const json::json_pointer jp(ref_str.substr(1));
    if (root_->contains(jp)) return root_->at(jp);
  } catch (const json::exception&) {
  }
  fail(fmt::format("'$ref' '{}' does not resolve", ref_str), ptr);
}

// One rule per $ref target, declared before its schema is compiled so recursion refers back.
RuleId Compiler::resolve(const json& r, const std::string& ptr, int depth) {
  const json& target = follow(r, ptr);
  const std::string key = r.get<std::string>();
  if (auto it = refs_.find(key); it != refs_.end()) return it->second;
  const RuleId id = declare(key);
  refs_.emplace(key, id);
  b_.define(id, schema_expr(target, key.substr(1), depth + 1));
  return id;
}

// The parts an allOf intersects: its branches (through $refs and nested allOfs) and the
// keywords beside it. Trivial parts (true, annotations only) drop out.
void Compiler::collect_parts(const json& s, const std::string& ptr, int depth, std::vector<std::pair<const json*, std::string>>& out) {
  if (depth > o_.max_depth) fail(fmt::format("schemas nest deeper than {}", o_.max_depth), ptr);
  if (s.is_boolean()) {
    if (!s.get<bool>()) fail("schema 'false' matches nothing", ptr);
    return;
  }
  if (!s.is_object()) fail("a schema must be an object or a boolean", ptr);
  if (s.contains("$ref") && !other_keyword(s, {"$ref"})) {
    const json& t = follow(s["$ref"], ptr);
    return collect_parts(t, s["$ref"].get<std::string>().substr(1), depth + 1, out);
  }
  if (!s.contains("allOf")) {
    if (other_keyword(s, {})) out.emplace_back(&s, ptr);
    return;
  }
  const json& list = s["allOf"];
  if (!list.is_array() || list.empty()) fail("'allOf' must be a non-empty array", ptr);
  if (other_keyword(s, {"allOf"})) out.emplace_back(&s, ptr);  // its siblings (allOf skipped in merge)
  for (size_t i = 0; i < list.size(); ++i) collect_parts(list[i], child(ptr, "allOf", i), depth + 1, out);
}

// allOf: one non-trivial part is that part; several merge into one schema (merge_all_of).
Expr Compiler::all_of(const json& s, const std::string& ptr, int depth) {
  const json& list = s["allOf"];
  if (!list.is_array() || list.empty()) fail("'allOf' must be a non-empty array", ptr);
  auto trivial = [](const json& x) { return (x.is_boolean() && x.get<bool>()) || (x.is_object() && !other_keyword(x, {})); };
  // The common `{"allOf": [{"$ref": ...}], "description": ...}`: that one branch as it is.
  if (!other_keyword(s, {"allOf"}) && std::count_if(list.begin(), list.end(), trivial) + 1 == std::ptrdiff_t(list.size()))
    for (size_t i = 0; i < list.size(); ++i)
      if (!trivial(list[i])) return schema_expr(list[i], child(ptr, "allOf", i), depth + 1);
  std::vector<std::pair<const json*, std::string>> parts;
  collect_parts(s, ptr, depth, parts);
  if (parts.empty()) return ref(any_value());
  if (parts.size() == 1) {  // one part left after flattening: it alone, without allOf / nullable
    json only = *parts[0].first;
    only.erase("allOf");
    only.erase("nullable");
    return schema_expr(only, parts[0].second, depth + 1);
  }
  return schema_expr(detail::merge_all_of(parts, ptr), ptr, depth + 1);
}

}  // namespace

namespace detail {
bool is_annotation(std::string_view k) { return kAnnotations.contains(k) || k.starts_with("x-"); }
void fail(std::string_view msg, const std::string& ptr) {
  throw GrammarError(fmt::format("json_schema: {} at {}", msg, where(ptr)));
}
}  // namespace detail

RuleId add_json_schema(Builder& b, const json& schema, const JsonSchemaOptions& options) {
  return Compiler(b, &schema, options).schema_rule(schema, "", 0);
}

RuleId add_json_value(Builder& b, const JsonSchemaOptions& options) { return Compiler(b, nullptr, options).any_value(); }

Grammar json_schema_grammar(const json& schema, const JsonSchemaOptions& options) {
  Builder b;
  Compiler c(b, &schema, options);
  RuleId root = c.schema_rule(schema, "", 0);
  if (options.whitespace == Ws::flexible) root = b.rule("root", seq({c.ws(), ref(root), c.ws()}));
  return b.build(root, options.max_rules);
}

Grammar json_object_grammar(const JsonSchemaOptions& options) {
  Builder b;
  Compiler c(b, nullptr, options);
  RuleId root = c.any_object();
  if (options.whitespace == Ws::flexible) root = b.rule("root", seq({c.ws(), ref(root), c.ws()}));
  return b.build(root, options.max_rules);
}

}  // namespace moe::grammar
