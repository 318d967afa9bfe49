// Python's operators and protocols over Value, as jinja2 (in its sandbox) applies them:
// arithmetic, comparison, `in`, iteration, len(), attribute and item access, slicing.
// Failures throw detail::Failure with Python's message; using an undefined value throws its hint.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "serve/jinja/value.h"

namespace moe::jinja {

bool py_eq(const Value& a, const Value& b);
bool py_lt(const Value& a, const Value& b);  // a < b, TypeError for unordered types
Value binary_op(const std::string& op, const Value& a, const Value& b, Interp& in);
bool contains(const Value& container, const Value& item);  // item in container
std::vector<Value> iterate(const Value& v);                 // list(v): a dict gives its keys
int64_t py_len(const Value& v);

// obj.name: a method of str/list/dict becomes a bound function; otherwise the item, or an
// undefined value naming what was missing (as jinja2's sandboxed getattr).
Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);  // obj[key]
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

[[noreturn]] void fail_undefined(const Value& u);  // jinja2's UndefinedError for a used undefined value
std::string type_desc(const Value& v);  // jinja2's object_type_repr: "dict object", "None"

// Python's sort (stable, by `<`) over values.
void py_sort(std::vector<Value>& v, bool reverse);

}  // namespace moe::jinja
