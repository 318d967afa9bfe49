// Python's text forms of values: str() (what {{ x }} prints), repr() (inside lists and dicts),
// float repr, and json.dumps (transformers' tojson filter).
#pragma once
#include <optional>
#include <string>

#include "serve/jinja/value.h"

namespace moe::jinja {

std::string float_repr(double d);           // repr(float): 1.0, 0.1, 1e-05, 1e+16, inf, nan
std::string py_str(const Value& v);         // str(v); an undefined value prints as ""
std::string py_repr(const Value& v);        // repr(v)
std::string py_repr_string(const std::string& s);
std::string html_escape(const std::string& s);  // markupsafe.escape: & < > " '

struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;          // None: one line
  std::string item_sep = ", ", key_sep = ": ";  // json.dumps defaults; "," with an indent
  bool sort_keys = false;
};
// json.dumps(v, ...). Throws detail::Failure for what Python cannot serialize (undefined,
// namespace, functions) and for nesting deeper than kMaxNesting.
std::string to_json(const Value& v, const JsonOptions& o);

constexpr int kMaxNesting = 500;  // values nested deeper (or cyclic) are an error, not a stack overflow

}  // namespace moe::jinja
