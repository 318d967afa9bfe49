// The values a template computes with, modelled on the Python objects jinja2 hands around:
// lists and dicts are shared by reference (as in Python), strings are immutable and shared.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe::jinja {

class Value;
class Interp;  // the evaluator (evaluator.h): builtins that call back into the template get it

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

struct Function {
  std::string name;  // named in error messages
  std::function<Value(CallArgs&, Interp&)> call;
};

// A Python list, tuple, or dict view (keys(), values(), items() print as dict_keys([...]) etc.).
enum class ListKind : uint8_t { List, Tuple, DictKeys, DictValues, DictItems };
struct List {
  std::vector<Value> items;
  ListKind kind = ListKind::List;
};

// A Python dict (insertion-ordered), a jinja2 namespace(), or a for loop's `loop`.
enum class DictKind : uint8_t { Dict, Namespace, Loop };
class Dict {
 public:
  DictKind kind = DictKind::Dict;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  const Value* find(const char* key) const { return find(std::string_view(key)); }
  const Value* find(const std::string& key) const { return find(std::string_view(key)); }
  void set(const Value& key, Value v);
  void set(std::string_view key, Value v);
  void set(const char* key, Value v);
  bool erase(const Value& key);
  size_t size() const;
  const std::vector<std::pair<Value, Value>>& entries() const;

 private:
  std::vector<std::pair<Value, Value>> entries_;
  std::unordered_map<std::string, size_t> index_;  // hash_key(key) -> position in entries_
};

class Value {
 public:
  enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Function };

  Value() : v_(Undef{}) {}
  static Value undefined(std::string hint);  // hint: the message if it is used, e.g. "'x' is undefined"
  static Value none() { Value v; v.v_ = std::monostate{}; return v; }
  Value(bool b) : v_(b) {}
  Value(int64_t i) : v_(i) {}
  Value(int i) : v_(int64_t{i}) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::make_shared<const std::string>(std::move(s))) {}
  Value(std::string_view s) : Value(std::string(s)) {}
  Value(const char* s) : Value(std::string(s)) {}
  // A markupsafe.Markup string (from |safe, |escape): `Markup + str` HTML-escapes the str.
  static Value markup(std::string s) { Value v(std::move(s)); v.markup_ = true; return v; }
  static Value make_list(std::vector<Value> items = {}, ListKind k = ListKind::List);
  static Value make_tuple(std::vector<Value> items) { return make_list(std::move(items), ListKind::Tuple); }
  static Value make_dict(DictKind k = DictKind::Dict);
  static Value function(std::string name, std::function<Value(CallArgs&, Interp&)> fn);
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::Undefined; }
  bool is_none() const { return kind() == Kind::None; }
  bool is_bool() const { return kind() == Kind::Bool; }
  bool is_int() const { return kind() == Kind::Int; }  // not bool
  bool is_float() const { return kind() == Kind::Float; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // Python's bool is an int
  bool is_string() const { return kind() == Kind::String; }
  bool is_markup() const { return markup_ && is_string(); }
  bool is_list() const { return kind() == Kind::List; }
  bool is_dict() const { return kind() == Kind::Dict; }
  bool is_mapping() const { return is_dict() && dict().kind == DictKind::Dict; }
  bool is_namespace() const { return is_dict() && dict().kind == DictKind::Namespace; }
  bool is_function() const { return kind() == Kind::Function; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return is_bool() ? int64_t{as_bool()} : std::get<int64_t>(v_); }  // int or bool
  double as_double() const { return is_float() ? std::get<double>(v_) : static_cast<double>(as_int()); }
  const std::string& str() const { return *std::get<Str>(v_); }
  List& list() const { return *std::get<std::shared_ptr<List>>(v_); }
  Dict& dict() const { return *std::get<std::shared_ptr<Dict>>(v_); }
  const Function& function() const { return *std::get<std::shared_ptr<const Function>>(v_); }
  const std::string& hint() const;  // of an undefined value
  const void* identity() const;     // the shared object, for `is sameas` and cycle checks

  bool truthy() const;             // Python bool()
  std::string type_name() const;   // Python's type(x).__name__: "int", "str", "dict", "NoneType", ...

 private:
  using Str = std::shared_ptr<const std::string>;
  struct Undef {
    std::shared_ptr<const std::string> hint;
  };
  std::variant<Undef, std::monostate, bool, int64_t, double, Str, std::shared_ptr<List>, std::shared_ptr<Dict>,
               std::shared_ptr<const Function>>
      v_;
  bool markup_ = false;
};

inline size_t Dict::size() const { return entries_.size(); }
inline const std::vector<std::pair<Value, Value>>& Dict::entries() const { return entries_; }

// The key a dict indexes by: Python's hash equality (1 == 1.0 == True). Throws detail::Failure
// for unhashable keys (lists, dicts).
std::string hash_key(const Value& key);

}  // namespace moe::jinja
