// The builtins a template can call: jinja2's filters and tests (with HF's tojson), the methods of
// Python str/list/dict that templates use, and the globals transformers provides.
#pragma once
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "serve/jinja/value.h"

namespace moe::jinja {

struct Scope;

// Unknown: not a jinja2 name (a parse error); Unsupported: jinja2 has it, we do not (an error
// when it is used).
enum class Support { Unknown, Unsupported, Supported };
Support filter_support(std::string_view name);
Support test_support(std::string_view name);

Value call_filter(const std::string& name, const Value& subject, CallArgs& args, Interp& in);
bool call_test(const std::string& name, const Value& subject, CallArgs& args, Interp& in);

// obj.name as a Python attribute: a bound method of str/list/dict, an undefined value for
// the sandbox's unsafe (mutating) methods, nullopt when the type has no such attribute.
std::optional<Value> bound_method(const Value& obj, const std::string& name);

// range, namespace, dict, raise_exception, strftime_now.
void add_globals(Scope& globals);

// Binds call arguments to a Python-style signature: positional first, then by keyword.
class Args {
 public:
  Args(std::string fn, CallArgs& a, std::initializer_list<const char*> names);
  const Value* get(size_t i) const { return vals_[i]; }
  bool has(size_t i) const { return vals_[i] != nullptr; }
  Value get_or(size_t i, Value dflt) const { return vals_[i] ? *vals_[i] : std::move(dflt); }
  const std::string& fn() const { return fn_; }
  // Typed access, failing with the function's name on a wrong type.
  int64_t get_int(size_t i, int64_t dflt) const;
  std::string get_str(size_t i, std::string dflt) const;
  bool get_bool(size_t i, bool dflt) const { return vals_[i] ? vals_[i]->truthy() : dflt; }

 private:
  std::string fn_;
  std::vector<const Value*> vals_;
};

}  // namespace moe::jinja
