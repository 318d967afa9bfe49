#include "serve/jinja/value.h"

#include <cmath>

#include "serve/jinja/error.h"
#include "serve/jinja/format.h"

namespace moe::jinja {

Value Value::undefined(std::string hint) {
  Value v;
  v.v_ = Undef{std::make_shared<const std::string>(std::move(hint))};
  return v;
}

Value Value::make_list(std::vector<Value> items, ListKind k) {
  Value v;
  v.v_ = std::make_shared<List>(List{std::move(items), k});
  return v;
}

Value Value::make_dict(DictKind k) {
  Value v;
  auto d = std::make_shared<Dict>();
  d->kind = k;
  v.v_ = std::move(d);
  return v;
}

Value Value::function(std::string name, std::function<Value(CallArgs&, Interp&)> fn) {
  Value v;
  v.v_ = std::make_shared<const Function>(Function{std::move(name), std::move(fn)});
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  using J = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case J::null: return none();
    case J::boolean: return Value(j.get<bool>());
    case J::number_integer: return Value(j.get<int64_t>());
    case J::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      return u <= uint64_t(INT64_MAX) ? Value(static_cast<int64_t>(u)) : Value(static_cast<double>(u));
    }
    case J::number_float: return Value(j.get<double>());
    case J::string: return Value(j.get_ref<const std::string&>());
    case J::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return make_list(std::move(items));
    }
    case J::object: {
      Value d = make_dict();
      for (const auto& [k, e] : j.items()) d.dict().set(std::string_view(k), from_json(e));
      return d;
    }
    default: return none();  // binary / discarded: not produced by the JSON parser
  }
}

const std::string& Value::hint() const {
  static const std::string empty;
  const auto& h = std::get<Undef>(v_).hint;
  return h ? *h : empty;
}

const void* Value::identity() const {
  switch (kind()) {
    case Kind::String: return std::get<Str>(v_).get();
    case Kind::List: return std::get<std::shared_ptr<List>>(v_).get();
    case Kind::Dict: return std::get<std::shared_ptr<Dict>>(v_).get();
    case Kind::Function: return std::get<std::shared_ptr<const Function>>(v_).get();
    default: return nullptr;
  }
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::Undefined: case Kind::None: return false;
    case Kind::Bool: return as_bool();
    case Kind::Int: return as_int() != 0;
    case Kind::Float: return as_double() != 0.0;
    case Kind::String: return !str().empty();
    case Kind::List: return !list().items.empty();
    case Kind::Dict: return dict().kind != DictKind::Dict || dict().size() > 0;
    case Kind::Function: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind()) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::List:
      switch (list().kind) {
        case ListKind::List: return "list";
        case ListKind::Tuple: return "tuple";
        case ListKind::DictKeys: return "dict_keys";
        case ListKind::DictValues: return "dict_values";
        case ListKind::DictItems: return "dict_items";
      }
      return "list";
    case Kind::Dict:
      return dict().kind == DictKind::Namespace ? "Namespace" : dict().kind == DictKind::Loop ? "LoopContext" : "dict";
    case Kind::Function: return "function";
  }
  return "object";
}

std::string hash_key(const Value& key) {
  switch (key.kind()) {
    case Value::Kind::String: return "s" + key.str();
    case Value::Kind::Bool: case Value::Kind::Int: return "n" + std::to_string(key.as_int());
    case Value::Kind::Float: {
      const double d = key.as_double();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18)
        return "n" + std::to_string(static_cast<int64_t>(d));
      return "f" + float_repr(d);
    }
    case Value::Kind::None: return "N";
    case Value::Kind::List:
      if (key.list().kind == ListKind::Tuple) {
        std::string k = "t(";
        for (const Value& v : key.list().items) k += hash_key(v) + "\x1f";
        return k + ")";
      }
      break;
    case Value::Kind::Function: return "F" + std::to_string(reinterpret_cast<uintptr_t>(key.identity()));
    default: break;
  }
  detail::fail("unhashable type: '" + key.type_name() + "'");
}

const Value* Dict::find(const Value& key) const {
  auto it = index_.find(hash_key(key));
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

const Value* Dict::find(std::string_view key) const {
  std::string k;
  k.reserve(key.size() + 1);
  k += 's';
  k += key;
  auto it = index_.find(k);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

void Dict::set(const Value& key, Value v) {
  auto [it, inserted] = index_.try_emplace(hash_key(key), entries_.size());
  if (inserted)
    entries_.emplace_back(key, std::move(v));
  else
    entries_[it->second].second = std::move(v);
}

void Dict::set(std::string_view key, Value v) { set(Value(key), std::move(v)); }
void Dict::set(const char* key, Value v) { set(Value(key), std::move(v)); }

bool Dict::erase(const Value& key) {
  auto it = index_.find(hash_key(key));
  if (it == index_.end()) return false;
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(it->second));
  index_.clear();
  for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(hash_key(entries_[i].first), i);
  return true;
}

}  // namespace moe::jinja
