#include "serve/jinja/ops.h"

#include <algorithm>
#include <cmath>

#include "serve/jinja/builtins.h"
#include "serve/jinja/error.h"
#include "serve/jinja/evaluator.h"
#include "serve/jinja/format.h"
#include "serve/jinja/text.h"

namespace moe::jinja {

using detail::fail;

namespace {

bool is_seq(const Value& v) { return v.is_list() && (v.list().kind == ListKind::List || v.list().kind == ListKind::Tuple); }

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  fail("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

// a op b on int64, failing where Python would have gone on with a big integer.
template <class Op>
int64_t checked(Op op, int64_t a, int64_t b) {
  int64_t r = 0;
  if (op(a, b, &r)) fail("integer overflow (beyond 64 bits)");
  return r;
}
bool add(int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); }
bool sub(int64_t a, int64_t b, int64_t* r) { return __builtin_sub_overflow(a, b, r); }
bool mul(int64_t a, int64_t b, int64_t* r) { return __builtin_mul_overflow(a, b, r); }

int64_t floor_div(int64_t a, int64_t b) {
  if (b == 0) fail("integer division or modulo by zero");
  if (a == INT64_MIN && b == -1) fail("integer overflow (beyond 64 bits)");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t py_mod(int64_t a, int64_t b) {
  if (b == 0) fail("integer division or modulo by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

double py_fmod(double a, double b) {
  if (b == 0) fail("float modulo");
  double r = std::fmod(a, b);
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  if (r == 0) r = std::copysign(0.0, b);
  return r;
}

Value repeat(const Value& seq, int64_t n, Interp& in) {
  if (n <= 0) return seq.is_string() ? Value("") : Value::make_list({}, seq.list().kind);
  if (seq.is_string()) {
    const std::string& s = seq.str();
    in.check_size(s.size() * static_cast<size_t>(std::min<int64_t>(n, int64_t(1) << 40)));
    std::string out;
    out.reserve(s.size() * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out += s;
    return seq.is_markup() ? Value::markup(std::move(out)) : Value(std::move(out));
  }
  const auto& items = seq.list().items;
  in.check_items(items.size() * static_cast<size_t>(std::min<int64_t>(n, int64_t(1) << 40)));
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::make_list(std::move(out), seq.list().kind);
}

// printf-style "text %s" % args (Python's str % operator), for the common conversions.
Value percent_format(const std::string& fmt, const Value& args, Interp& in) {
  std::vector<Value> vals = args.is_list() && args.list().kind == ListKind::Tuple ? args.list().items : std::vector<Value>{args};
  std::string out;
  size_t k = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) fail("incomplete format");
    if (fmt[i] == '%') {
      out += '%';
      continue;
    }
    std::string spec;
    while (i < fmt.size() && std::string_view("0123456789.-+ #").find(fmt[i]) != std::string_view::npos) spec += fmt[i++];
    if (i >= fmt.size()) fail("incomplete format");
    if (k >= vals.size()) fail("not enough arguments for format string");
    const Value& v = vals[k++];
    const char conv = fmt[i];
    if (conv == 's' && spec.empty()) {
      out += py_str(v);
    } else if (conv == 'r' && spec.empty()) {
      out += py_repr(v);
    } else if ((conv == 'd' || conv == 'i') && v.is_number()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, ("%" + spec + "lld").c_str(), static_cast<long long>(v.is_float() ? static_cast<int64_t>(v.as_double()) : v.as_int()));
      out += buf;
    } else if ((conv == 'f' || conv == 'e' || conv == 'g') && v.is_number()) {
      char buf[512];
      std::snprintf(buf, sizeof buf, ("%" + spec.substr(0, 20) + conv).c_str(), v.as_double());
      out += buf;
    } else {
      fail("unsupported format '%" + spec + conv + "' in the % operator");
    }
    in.check_length(out.size());
  }
  in.check_size(out.size());
  if (k < vals.size() && args.is_list() && args.list().kind == ListKind::Tuple)
    fail("not all arguments converted during string formatting");
  return Value(std::move(out));
}

}  // namespace

[[noreturn]] void fail_undefined(const Value& u) { fail(u.hint().empty() ? "undefined value" : u.hint()); }

std::string type_desc(const Value& v) {
  if (v.is_none()) return "None";
  return v.type_name() + " object";
}

bool py_eq(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::Undefined: case Value::Kind::None: return true;
    case Value::Kind::String: return a.str() == b.str();
    case Value::Kind::List: {
      const List& x = a.list();
      const List& y = b.list();
      if (&x == &y) return true;
      if ((x.kind == ListKind::Tuple) != (y.kind == ListKind::Tuple) || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!py_eq(x.items[i], y.items[i])) return false;
      return true;
    }
    case Value::Kind::Dict: {
      const Dict& x = a.dict();
      const Dict& y = b.dict();
      if (&x == &y) return true;
      if (x.kind != DictKind::Dict || y.kind != DictKind::Dict || x.size() != y.size()) return false;
      for (const auto& [k, v] : x.entries()) {
        const Value* o = y.find(k);
        if (!o || !py_eq(v, *o)) return false;
      }
      return true;
    }
    default: return a.identity() == b.identity();
  }
}

bool py_lt(const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 order == code point order
  if (is_seq(a) && is_seq(b) && a.list().kind == b.list().kind) {
    const auto& x = a.list().items;
    const auto& y = b.list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (py_eq(x[i], y[i])) continue;
      return py_lt(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  fail("'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

Value binary_op(const std::string& op, const Value& a, const Value& b, Interp& in) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  const bool nums = a.is_number() && b.is_number();
  const bool ints = nums && !a.is_float() && !b.is_float();
  if (op == "+") {
    if (ints) return Value(checked(add, a.as_int(), b.as_int()));
    if (nums) return Value(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) {
      in.check_size(a.str().size() + b.str().size());
      if (a.is_markup() || b.is_markup())  // Markup.__add__ / __radd__ escape the plain side
        return Value::markup((a.is_markup() ? a.str() : html_escape(a.str())) + (b.is_markup() ? b.str() : html_escape(b.str())));
      return Value(a.str() + b.str());
    }
    if (is_seq(a) && is_seq(b) && a.list().kind == b.list().kind) {
      in.check_items(a.list().items.size() + b.list().items.size());
      std::vector<Value> items = a.list().items;
      items.insert(items.end(), b.list().items.begin(), b.list().items.end());
      return Value::make_list(std::move(items), a.list().kind);
    }
    if (a.is_string()) fail("can only concatenate str (not \"" + b.type_name() + "\") to str");
    if (is_seq(a)) fail("can only concatenate " + a.type_name() + " (not \"" + b.type_name() + "\") to " + a.type_name());
    unsupported("+", a, b);
  }
  if (op == "-") {
    if (ints) return Value(checked(sub, a.as_int(), b.as_int()));
    if (nums) return Value(a.as_double() - b.as_double());
    unsupported("-", a, b);
  }
  if (op == "*") {
    if (ints) return Value(checked(mul, a.as_int(), b.as_int()));
    if (nums) return Value(a.as_double() * b.as_double());
    if ((a.is_string() || is_seq(a)) && b.is_number() && !b.is_float()) return repeat(a, b.as_int(), in);
    if ((b.is_string() || is_seq(b)) && a.is_number() && !a.is_float()) return repeat(b, a.as_int(), in);
    unsupported("*", a, b);
  }
  if (op == "/") {
    if (!nums) unsupported("/", a, b);
    if (b.as_double() == 0) fail("division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (op == "//") {
    if (ints) return Value(floor_div(a.as_int(), b.as_int()));
    if (!nums) unsupported("//", a, b);
    if (b.as_double() == 0) fail("float floor division by zero");
    return Value(std::floor(a.as_double() / b.as_double()));
  }
  if (op == "%") {
    if (ints) return Value(py_mod(a.as_int(), b.as_int()));
    if (nums) return Value(py_fmod(a.as_double(), b.as_double()));
    if (a.is_markup()) {  // Markup % args escapes the string arguments
      Value args = b;
      auto esc = [](const Value& x) { return x.is_string() && !x.is_markup() ? Value(html_escape(x.str())) : x; };
      if (b.is_list() && b.list().kind == ListKind::Tuple) {
        std::vector<Value> items;
        for (const Value& x : b.list().items) items.push_back(esc(x));
        args = Value::make_tuple(std::move(items));
      } else {
        args = esc(b);
      }
      return Value::markup(percent_format(a.str(), args, in).str());
    }
    if (a.is_string()) return percent_format(a.str(), b, in);
    unsupported("%", a, b);
  }
  if (op == "**") {
    if (ints && b.as_int() >= 0) {
      int64_t base = a.as_int(), e = b.as_int(), acc = 1;
      while (e > 0) {
        if (e & 1) acc = checked(mul, acc, base);
        e >>= 1;
        if (e > 0) base = checked(mul, base, base);
      }
      return Value(acc);
    }
    if (nums) {
      if (a.as_double() == 0 && b.as_double() < 0) fail("0.0 cannot be raised to a negative power");
      return Value(std::pow(a.as_double(), b.as_double()));
    }
    unsupported("** or pow()", a, b);
  }
  fail("unknown operator " + op);
}

bool contains(const Value& c, const Value& item) {
  switch (c.kind()) {
    case Value::Kind::Undefined: return false;
    case Value::Kind::String:
      if (!item.is_string()) fail("'in <string>' requires string as left operand, not " + item.type_name());
      return c.str().find(item.str()) != std::string::npos;
    case Value::Kind::List:
      return std::any_of(c.list().items.begin(), c.list().items.end(), [&](const Value& v) { return py_eq(v, item); });
    case Value::Kind::Dict:
      if (c.dict().kind == DictKind::Dict) return c.dict().find(item) != nullptr;
      break;
    default: break;
  }
  fail("argument of type '" + c.type_name() + "' is not iterable");
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::List: return v.list().items;
    case Value::Kind::Dict: {
      if (v.dict().kind != DictKind::Dict) break;
      std::vector<Value> keys;
      keys.reserve(v.dict().size());
      for (const auto& e : v.dict().entries()) keys.push_back(e.first);
      return keys;
    }
    case Value::Kind::String: {
      std::vector<Value> chars;
      for (char32_t c : text::decode(v.str())) {
        std::string s;
        text::append(s, c);
        chars.emplace_back(std::move(s));
      }
      return chars;
    }
    default: break;
  }
  fail("'" + v.type_name() + "' object is not iterable");
}

int64_t py_len(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return 0;
    case Value::Kind::String: return static_cast<int64_t>(text::length(v.str()));
    case Value::Kind::List: return static_cast<int64_t>(v.list().items.size());
    case Value::Kind::Dict:
      if (v.dict().kind == DictKind::Dict) return static_cast<int64_t>(v.dict().size());
      break;
    default: break;
  }
  fail("object of type '" + v.type_name() + "' has no len()");
}

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_dict() && obj.dict().kind != DictKind::Dict) {  // namespace, loop: attributes are their items
    if (const Value* v = obj.dict().find(name)) return *v;
    return Value::undefined("'" + type_desc(obj) + "' has no attribute '" + name + "'");
  }
  if (auto m = bound_method(obj, name)) return *m;
  if (obj.is_dict())
    if (const Value* v = obj.dict().find(name)) return *v;
  return Value::undefined("'" + type_desc(obj) + "' has no attribute '" + name + "'");
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  auto missing = [&]() {
    if (key.is_string()) {  // jinja2 falls back to the attribute
      if (auto m = bound_method(obj, key.str())) return *m;
      if (obj.is_dict() && obj.dict().kind != DictKind::Dict)
        if (const Value* v = obj.dict().find(key.str())) return *v;
      return Value::undefined("'" + type_desc(obj) + "' has no attribute '" + key.str() + "'");
    }
    return Value::undefined(type_desc(obj) + " has no element " + py_repr(key));
  };
  if ((obj.is_list() || obj.is_string()) && key.is_number() && !key.is_float()) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      const auto& items = obj.list().items;
      const auto n = static_cast<int64_t>(items.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return missing();
      return items[static_cast<size_t>(i)];
    }
    const std::u32string cps = text::decode(obj.str());
    const auto n = static_cast<int64_t>(cps.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return missing();
    std::string s;
    text::append(s, cps[static_cast<size_t>(i)]);
    return Value(std::move(s));
  }
  if (obj.is_dict() && obj.dict().kind == DictKind::Dict) {
    if (key.is_list() && key.list().kind != ListKind::Tuple) return missing();
    if (key.is_dict()) return missing();
    if (const Value* v = obj.dict().find(key)) return *v;
  }
  return missing();
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) fail_undefined(obj);
  auto idx = [](const Value& v) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (!v.is_number() || v.is_float()) fail("slice indices must be integers or None");
    return v.as_int();
  };
  const int64_t st = idx(step).value_or(1);
  if (st == 0) fail("slice step cannot be zero");
  std::u32string cps;
  const bool is_str = obj.is_string();
  if (is_str) cps = text::decode(obj.str());
  else if (!is_seq(obj)) return Value::undefined(type_desc(obj) + " has no element slice");
  const int64_t n = is_str ? static_cast<int64_t>(cps.size()) : static_cast<int64_t>(obj.list().items.size());
  auto adjust = [&](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= n) {
      x = st < 0 ? n - 1 : n;
    }
    return x;
  };
  const int64_t b = adjust(idx(start), st < 0 ? n - 1 : 0);
  const int64_t e = adjust(idx(stop), st < 0 ? -1 : n);
  if (is_str) {
    std::u32string out;
    for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(cps[static_cast<size_t>(i)]);
    return Value(text::encode(out));
  }
  std::vector<Value> out;
  const auto& items = obj.list().items;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(items[static_cast<size_t>(i)]);
  return Value::make_list(std::move(out), obj.list().kind);
}

void py_sort(std::vector<Value>& v, bool reverse) {
  // Python's sort compares with < only; a reverse sort keeps equal items in their order.
  std::stable_sort(v.begin(), v.end(), [&](const Value& a, const Value& b) { return reverse ? py_lt(b, a) : py_lt(a, b); });
}

}  // namespace moe::jinja
