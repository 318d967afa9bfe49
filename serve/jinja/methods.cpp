// The methods of Python str, list and dict that templates call (s.strip(), d.get(k), ...).
// As in jinja2's ImmutableSandboxedEnvironment, methods that modify a list or dict are unsafe:
// they resolve to an undefined value whose use is a SecurityError-style failure.
#include <algorithm>
#include <set>
#include <unordered_set>

#include "serve/jinja/builtins.h"
#include "serve/jinja/error.h"
#include "serve/jinja/evaluator.h"
#include "serve/jinja/format.h"
#include "serve/jinja/ops.h"
#include "serve/jinja/strings.h"
#include "serve/jinja/text.h"

namespace moe::jinja {

using detail::fail;

namespace {

const std::unordered_set<std::string>& str_attrs() {
  static const std::unordered_set<std::string> s = {
      "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format",
      "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower",
      "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans",
      "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit",
      "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper", "zfill"};
  return s;
}
const std::unordered_set<std::string> kListSafe = {"index", "count", "copy"};
const std::unordered_set<std::string> kListUnsafe = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"};
const std::unordered_set<std::string> kDictSafe = {"get", "items", "keys", "values", "copy", "fromkeys"};
const std::unordered_set<std::string> kDictUnsafe = {"clear", "pop", "popitem", "setdefault", "update"};

std::optional<std::string> opt_str(const Args& g, size_t i) {
  if (!g.has(i) || g.get(i)->is_none()) return std::nullopt;
  if (!g.get(i)->is_string()) fail(g.fn() + "() argument must be str or None, not " + g.get(i)->type_name());
  return g.get(i)->str();
}

std::string need_str(const Args& g, size_t i) {
  if (!g.has(i)) fail(g.fn() + "() is missing a required argument");
  if (!g.get(i)->is_string()) fail(g.fn() + "() argument must be str, not " + g.get(i)->type_name());
  return g.get(i)->str();
}

Value str_list(std::vector<std::string> parts) {
  std::vector<Value> out;
  out.reserve(parts.size());
  for (auto& p : parts) out.emplace_back(std::move(p));
  return Value::make_list(std::move(out));
}

// str.startswith / endswith: a prefix or a tuple of them, optional start/end (code points).
bool affix(const std::string& s0, const Args& g, bool starts) {
  std::string s = s0;
  if (g.has(1) || g.has(2)) {
    const Value sliced = get_slice(Value(s0), g.get_or(1, Value::none()), g.get_or(2, Value::none()), Value::none());
    s = sliced.str();
  }
  auto one = [&](const Value& p) {
    if (!p.is_string()) fail(g.fn() + " first arg must be str or a tuple of str, not " + p.type_name());
    const std::string& x = p.str();
    if (x.size() > s.size()) return false;
    return starts ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (!g.has(0)) fail(g.fn() + "() takes at least 1 argument (0 given)");
  const Value& p = *g.get(0);
  if (p.is_list() && p.list().kind == ListKind::Tuple)
    return std::any_of(p.list().items.begin(), p.list().items.end(), one);
  return one(p);
}

bool all_of_cps(const std::string& s, bool (*pred)(char32_t)) {
  const std::u32string c = text::decode(s);
  return !c.empty() && std::all_of(c.begin(), c.end(), pred);
}

// Python's str.format for "{}", "{0}", "{name}", "{0.attr}", "{0[key]}" with "!r"/"!s"; no format specs.
Value str_format(const std::string& f, CallArgs& a, Interp& in) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    const char c = f[i];
    if (c == '}') {
      if (i + 1 < f.size() && f[i + 1] == '}') ++i;
      else fail("Single '}' encountered in format string");
      out += '}';
      continue;
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < f.size() && f[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t end = f.find('}', i);
    if (end == std::string::npos) fail("expected '}' before end of string");
    std::string field = f.substr(i + 1, end - i - 1);
    i = end;
    char conv = 0;
    if (const size_t colon = field.find(':'); colon != std::string::npos) {
      if (colon + 1 < field.size()) fail("format specs ('" + field.substr(colon) + "') are not supported in str.format");
      field.resize(colon);
    }
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      conv = bang + 1 < field.size() ? field[bang + 1] : 0;
      field.resize(bang);
    }
    size_t stop = std::min(field.find('.'), field.find('['));
    const std::string head = field.substr(0, stop);
    Value v;
    if (head.empty()) {
      if (auto_idx >= a.pos.size()) fail("Replacement index " + std::to_string(auto_idx) + " out of range for positional args tuple");
      v = a.pos[auto_idx++];
    } else if (std::all_of(head.begin(), head.end(), ::isdigit)) {
      const size_t k = std::stoul(head.substr(0, 9));
      if (k >= a.pos.size()) fail("Replacement index " + head + " out of range for positional args tuple");
      v = a.pos[k];
    } else {
      auto it = std::find_if(a.kw.begin(), a.kw.end(), [&](const auto& kv) { return kv.first == head; });
      if (it == a.kw.end()) fail("KeyError: '" + head + "'");
      v = it->second;
    }
    while (stop < field.size()) {
      if (field[stop] == '.') {
        const size_t n = std::min(field.find('.', stop + 1), field.find('[', stop + 1));
        v = get_attr(v, field.substr(stop + 1, n - stop - 1));
        stop = n;
      } else {
        const size_t close = field.find(']', stop);
        if (close == std::string::npos) fail("Missing ']' in format string");
        const std::string key = field.substr(stop + 1, close - stop - 1);
        const bool digits = !key.empty() && key.size() < 18 && std::all_of(key.begin(), key.end(), ::isdigit);
        v = get_item(v, digits ? Value(static_cast<int64_t>(std::stoll(key))) : Value(key));
        stop = close + 1;
      }
    }
    out += conv == 'r' ? py_repr(v) : py_str(v);
    in.check_length(out.size());
  }
  in.check_size(out.size());
  return Value(std::move(out));
}

Value str_method(const std::string& s, const std::string& name, CallArgs& a, Interp& in) {
  auto g = [&](std::initializer_list<const char*> names) { return Args("str." + name, a, names); };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Args x = g({"chars"});
    return Value(pystr::strip(s, opt_str(x, 0), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    Args x = g({"sep", "maxsplit"});
    auto parts = name == "split" ? pystr::split(s, opt_str(x, 0), x.get_int(1, -1)) : pystr::rsplit(s, opt_str(x, 0), x.get_int(1, -1));
    in.check_items(parts.size());
    return str_list(std::move(parts));
  }
  if (name == "splitlines") return str_list(pystr::splitlines(s, g({"keepends"}).get_bool(0, false)));
  if (name == "startswith" || name == "endswith") return Value(affix(s, g({"prefix", "start", "end"}), name == "startswith"));
  if (name == "replace") {
    Args x = g({"old", "new", "count"});
    std::string r = pystr::replace(s, need_str(x, 0), need_str(x, 1), x.get_int(2, -1));
    in.check_size(r.size());
    return Value(std::move(r));
  }
  if (name == "upper") return Value(text::upper(s));
  if (name == "lower" || name == "casefold") return Value(text::lower(s));
  if (name == "title") return Value(text::py_title(s));
  if (name == "capitalize") return Value(text::py_capitalize(s));
  if (name == "swapcase") return Value(text::swapcase(s));
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    Args x = g({"sub", "start", "end"});
    const std::string sub = need_str(x, 0);
    const bool rev = name[0] == 'r';
    int64_t r;
    if (x.has(1) || x.has(2)) {
      // Search within s[start:end], reported as an index into s.
      const int64_t n = static_cast<int64_t>(text::length(s));
      int64_t b = x.get_int(1, 0);
      if (b < 0) b = std::max<int64_t>(0, b + n);
      const Value part = get_slice(Value(s), Value(b), x.get_or(2, Value::none()), Value::none());
      r = pystr::find(part.str(), sub, rev);
      if (r >= 0) r += std::min(b, n);
    } else {
      r = pystr::find(s, sub, rev);
    }
    if (r < 0 && (name == "index" || name == "rindex")) fail("substring not found");
    return Value(r);
  }
  if (name == "count") return Value(pystr::count(s, need_str(g({"sub"}), 0)));
  if (name == "join") {
    Args x = g({"iterable"});
    if (!x.has(0)) fail("str.join() takes exactly one argument (0 given)");
    std::string out;
    size_t i = 0;
    for (const Value& v : iterate(*x.get(0))) {
      if (!v.is_string()) fail("sequence item " + std::to_string(i) + ": expected str instance, " + v.type_name() + " found");
      if (i++) out += s;
      out += v.str();
      in.check_length(out.size());
    }
    in.check_size(out.size());
    return Value(std::move(out));
  }
  if (name == "format") return str_format(s, a, in);
  if (name == "ljust" || name == "rjust" || name == "center" || name == "zfill") {
    Args x = name == "zfill" ? g({"width"}) : g({"width", "fillchar"});
    const int64_t w = std::min<int64_t>(x.get_int(0, 0), 1 << 24);
    in.check_size(static_cast<size_t>(std::max<int64_t>(w, 0)) * 4);
    if (name == "zfill") {
      const bool sign = !s.empty() && (s[0] == '-' || s[0] == '+');
      std::string body = pystr::pad(sign ? s.substr(1) : s, sign ? w - 1 : w, '0', 1);
      return Value(sign ? s[0] + body : body);
    }
    std::string fill = x.get_str(1, " ");
    const std::u32string f = text::decode(fill);
    if (f.size() != 1) fail("The fill character must be exactly one character long");
    return Value(pystr::pad(s, w, f[0], name == "ljust" ? -1 : name == "rjust" ? 1 : 0));
  }
  if (name == "partition" || name == "rpartition") {
    const std::string sep = need_str(g({"sep"}), 0);
    if (sep.empty()) fail("empty separator");
    const size_t q = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (q == std::string::npos)
      return name == "partition" ? Value::make_tuple({Value(s), Value(""), Value("")}) : Value::make_tuple({Value(""), Value(""), Value(s)});
    return Value::make_tuple({Value(s.substr(0, q)), Value(sep), Value(s.substr(q + sep.size()))});
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const std::string p = need_str(g({"affix"}), 0);
    if (name == "removeprefix") return Value(s.compare(0, p.size(), p) == 0 ? s.substr(p.size()) : s);
    return Value(s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0 ? s.substr(0, s.size() - p.size()) : s);
  }
  if (name == "isdigit" || name == "isdecimal") return Value(all_of_cps(s, text::is_digit));
  if (name == "isnumeric") return Value(all_of_cps(s, text::is_numeric));
  if (name == "isalpha") return Value(all_of_cps(s, text::is_alpha));
  if (name == "isalnum") return Value(all_of_cps(s, [](char32_t c) { return text::is_alpha(c) || text::is_numeric(c); }));
  if (name == "isspace") return Value(all_of_cps(s, text::is_space));
  if (name == "isascii") return Value(std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }));
  if (name == "islower" || name == "isupper") {
    bool any = false;
    for (char32_t c : text::decode(s)) {
      if (name == "islower" ? text::is_upper(c) : text::is_lower(c)) return Value(false);
      any |= text::is_cased(c);
    }
    return Value(any);
  }
  fail("unsupported method str." + name + "()");
}

// Markup's methods: string arguments are escaped, string results stay Markup (markupsafe).
Value markup_method(const Value& self, const std::string& name, CallArgs& a, Interp& in) {
  static const std::unordered_set<std::string> kWrapped = {
      "join", "split", "rsplit", "splitlines", "format", "capitalize", "title", "lower", "upper", "replace", "ljust",
      "rjust", "lstrip", "rstrip", "center", "strip", "swapcase", "zfill", "partition", "rpartition"};
  if (!kWrapped.count(name)) return str_method(self.str(), name, a, in);
  auto esc = [](const Value& v) { return v.is_string() && !v.is_markup() ? Value::markup(html_escape(v.str())) : v; };
  for (Value& v : a.pos) v = esc(v);
  for (auto& kv : a.kw) kv.second = esc(kv.second);
  if (name == "join" && !a.pos.empty()) {
    std::vector<Value> items = iterate(a.pos[0]);
    for (Value& v : items) v = esc(v);
    a.pos[0] = Value::make_list(std::move(items));
  }
  Value r = str_method(self.str(), name, a, in);
  if (r.is_string()) return Value::markup(r.str());
  if (r.is_list())
    for (Value& v : r.list().items)
      if (v.is_string()) v = Value::markup(v.str());
  return r;
}

Value list_method(const Value& self, const std::string& name, CallArgs& a) {
  const auto& items = self.list().items;
  if (name == "copy") return Value::make_list(items, self.list().kind);
  Args x("list." + name, a, {"value"});
  if (!x.has(0)) fail(x.fn() + "() takes exactly one argument (0 given)");
  if (name == "count") return Value(static_cast<int64_t>(std::count_if(items.begin(), items.end(), [&](const Value& v) { return py_eq(v, *x.get(0)); })));
  for (size_t i = 0; i < items.size(); ++i)  // index
    if (py_eq(items[i], *x.get(0))) return Value(static_cast<int64_t>(i));
  fail(py_repr(*x.get(0)) + " is not in list");
}

Value dict_method(const Value& self, const std::string& name, CallArgs& a) {
  const Dict& d = self.dict();
  if (name == "get") {
    Args x("dict.get", a, {"key", "default"});
    if (!x.has(0)) fail("get expected at least 1 argument, got 0");
    const Value& k = *x.get(0);
    if (k.is_list() && k.list().kind != ListKind::Tuple) fail("unhashable type: 'list'");
    const Value* v = d.find(k);
    return v ? *v : x.get_or(1, Value::none());
  }
  if (!a.pos.empty() || !a.kw.empty()) fail("dict." + name + "() takes no arguments");
  std::vector<Value> out;
  out.reserve(d.size());
  if (name == "copy") {
    Value c = Value::make_dict();
    for (const auto& [k, v] : d.entries()) c.dict().set(k, v);
    return c;
  }
  for (const auto& [k, v] : d.entries())
    out.push_back(name == "keys" ? k : name == "values" ? v : Value::make_tuple({k, v}));
  return Value::make_list(std::move(out), name == "keys" ? ListKind::DictKeys : name == "values" ? ListKind::DictValues : ListKind::DictItems);
}

Value unsafe(const Value& obj, const std::string& name) {
  return Value::undefined("access to attribute '" + name + "' of '" + obj.type_name() + "' object is unsafe.");
}

}  // namespace

std::optional<Value> bound_method(const Value& obj, const std::string& name) {
  if (obj.is_string() && str_attrs().count(name)) {
    return Value::function("str." + name, [obj, name](CallArgs& a, Interp& in) {
      return obj.is_markup() ? markup_method(obj, name, a, in) : str_method(obj.str(), name, a, in);
    });
  }
  if (obj.is_list() && obj.list().kind != ListKind::DictKeys && obj.list().kind != ListKind::DictValues &&
      obj.list().kind != ListKind::DictItems) {
    const bool tuple = obj.list().kind == ListKind::Tuple;
    if (kListSafe.count(name) && !(tuple && name == "copy"))
      return Value::function("list." + name, [obj, name](CallArgs& a, Interp&) { return list_method(obj, name, a); });
    if (!tuple && kListUnsafe.count(name)) return unsafe(obj, name);
  }
  if (obj.is_mapping()) {
    if (name == "fromkeys") return Value::function("dict.fromkeys", [](CallArgs&, Interp&) -> Value { fail("unsupported method dict.fromkeys()"); });
    if (kDictSafe.count(name))
      return Value::function("dict." + name, [obj, name](CallArgs& a, Interp&) { return dict_method(obj, name, a); });
    if (kDictUnsafe.count(name)) return unsafe(obj, name);
  }
  return std::nullopt;
}

}  // namespace moe::jinja
