// jinja2's tests: `x is defined`, `x is mapping`, `x is divisibleby 3`, ...
#include <functional>
#include <unordered_map>

#include "serve/jinja/builtins.h"
#include "serve/jinja/error.h"
#include "serve/jinja/ops.h"
#include "serve/jinja/text.h"

namespace moe::jinja {

using detail::fail;

namespace {

using Test = std::function<bool(const Value&, CallArgs&, Interp&)>;

const Value& arg(CallArgs& a, const char* test) {
  if (a.pos.empty()) {
    if (!a.kw.empty()) return a.kw.front().second;
    fail(std::string("test '") + test + "' needs an argument");
  }
  return a.pos[0];
}

int64_t need_int(const Value& v, const char* test) {
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_number() || v.is_float()) fail(std::string("test '") + test + "' needs an integer, not '" + v.type_name() + "'");
  return v.as_int();
}

bool all_cased(const Value& v, bool upper) {
  if (!v.is_string()) return false;
  bool any = false;
  for (char32_t c : text::decode(v.str())) {
    if (upper ? text::is_lower(c) : text::is_upper(c)) return false;
    any |= text::is_cased(c);
  }
  return any;
}

bool same(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::None: case Value::Kind::Undefined: return a.is_none() || a.hint() == b.hint();
    case Value::Kind::Bool: return a.as_bool() == b.as_bool();
    case Value::Kind::Int: return a.as_int() == b.as_int() && a.as_int() >= -5 && a.as_int() <= 256;  // CPython's cached ints
    default: return a.identity() && a.identity() == b.identity();
  }
}

const std::unordered_map<std::string, Test>& tests() {
  static const std::unordered_map<std::string, Test> t = {
      {"defined", [](const Value& v, CallArgs&, Interp&) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, CallArgs&, Interp&) { return v.is_undefined(); }},
      {"none", [](const Value& v, CallArgs&, Interp&) { return v.is_none(); }},
      {"boolean", [](const Value& v, CallArgs&, Interp&) { return v.is_bool(); }},
      {"true", [](const Value& v, CallArgs&, Interp&) { return v.is_bool() && v.as_bool(); }},
      {"false", [](const Value& v, CallArgs&, Interp&) { return v.is_bool() && !v.as_bool(); }},
      {"integer", [](const Value& v, CallArgs&, Interp&) { return v.is_int(); }},
      {"float", [](const Value& v, CallArgs&, Interp&) { return v.is_float(); }},
      {"number", [](const Value& v, CallArgs&, Interp&) { return v.is_number(); }},
      {"string", [](const Value& v, CallArgs&, Interp&) { return v.is_string(); }},
      {"mapping", [](const Value& v, CallArgs&, Interp&) { return v.is_mapping(); }},
      {"iterable", [](const Value& v, CallArgs&, Interp&) {
         return v.is_undefined() || v.is_string() || v.is_list() || v.is_mapping();
       }},
      {"sequence", [](const Value& v, CallArgs&, Interp&) {
         return v.is_undefined() || v.is_string() || v.is_list() || v.is_mapping();
       }},
      {"callable", [](const Value& v, CallArgs&, Interp&) { return v.is_function(); }},
      {"sameas", [](const Value& v, CallArgs& a, Interp&) { return same(v, arg(a, "sameas")); }},
      {"escaped", [](const Value& v, CallArgs&, Interp&) { return v.is_markup(); }},
      {"in", [](const Value& v, CallArgs& a, Interp&) { return contains(arg(a, "in"), v); }},
      {"eq", [](const Value& v, CallArgs& a, Interp&) { return py_eq(v, arg(a, "eq")); }},
      {"ne", [](const Value& v, CallArgs& a, Interp&) { return !py_eq(v, arg(a, "ne")); }},
      {"lt", [](const Value& v, CallArgs& a, Interp&) { return py_lt(v, arg(a, "lt")); }},
      {"gt", [](const Value& v, CallArgs& a, Interp&) { return py_lt(arg(a, "gt"), v); }},
      {"le", [](const Value& v, CallArgs& a, Interp&) { return py_lt(v, arg(a, "le")) || py_eq(v, arg(a, "le")); }},
      {"ge", [](const Value& v, CallArgs& a, Interp&) { return py_lt(arg(a, "ge"), v) || py_eq(v, arg(a, "ge")); }},
      {"odd", [](const Value& v, CallArgs&, Interp&) { return need_int(v, "odd") % 2 != 0; }},
      {"even", [](const Value& v, CallArgs&, Interp&) { return need_int(v, "even") % 2 == 0; }},
      {"divisibleby", [](const Value& v, CallArgs& a, Interp&) {
         const int64_t d = need_int(arg(a, "divisibleby"), "divisibleby");
         if (d == 0) fail("integer division or modulo by zero");
         return d == -1 || need_int(v, "divisibleby") % d == 0;
       }},
      {"lower", [](const Value& v, CallArgs&, Interp&) { return all_cased(v, false); }},
      {"upper", [](const Value& v, CallArgs&, Interp&) { return all_cased(v, true); }},
      {"filter", [](const Value& v, CallArgs&, Interp&) { return v.is_string() && filter_support(v.str()) == Support::Supported; }},
      {"test", [](const Value& v, CallArgs&, Interp&) { return v.is_string() && test_support(v.str()) == Support::Supported; }},
  };
  return t;
}

const std::string& canonical(const std::string& name) {
  static const std::unordered_map<std::string, std::string> a = {
      {"==", "eq"}, {"equalto", "eq"}, {"!=", "ne"}, {"<", "lt"}, {"lessthan", "lt"}, {">", "gt"},
      {"greaterthan", "gt"}, {"<=", "le"}, {">=", "ge"}};
  auto it = a.find(name);
  return it == a.end() ? name : it->second;
}

}  // namespace

Support test_support(std::string_view name) {
  return tests().count(canonical(std::string(name))) ? Support::Supported : Support::Unknown;
}

bool call_test(const std::string& name, const Value& subject, CallArgs& args, Interp& in) {
  auto it = tests().find(canonical(name));
  if (it == tests().end()) fail("no test named '" + name + "'");
  return it->second(subject, args, in);
}

}  // namespace moe::jinja
