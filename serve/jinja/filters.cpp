// jinja2's filters, with HF's tojson (json.dumps) in place of jinja2's own.
#include <algorithm>
#include <cmath>
#include <functional>
#include <unordered_map>

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

using Filter = std::function<Value(const Value&, CallArgs&, Interp&)>;

std::string soft_str(const Value& v) { return v.is_string() ? v.str() : py_str(v); }

// jinja2's make_attrgetter: "a.b.0" looked up item by item (an int for digits).
Value attr_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t b = 0;
  for (;;) {
    const size_t e = path.find('.', b);
    const std::string part = path.substr(b, e == std::string::npos ? std::string::npos : e - b);
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) && part.size() < 18;
    v = get_item(v, digits ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
    if (e == std::string::npos) return v;
    b = e + 1;
  }
}

Value ignore_case(const Value& v, bool case_sensitive) {
  return !case_sensitive && v.is_string() ? Value(text::lower(v.str())) : v;
}

// Key extraction shared by sort, unique, min, max: optional attribute, optional case folding.
std::function<Value(const Value&)> key_fn(const Value* attribute, bool case_sensitive) {
  std::string attr = attribute && !attribute->is_none() ? soft_str(*attribute) : "";
  return [attr, case_sensitive](const Value& v) { return ignore_case(attr.empty() ? v : attr_path(v, attr), case_sensitive); };
}

std::vector<Value> sorted(std::vector<Value> items, const std::function<Value(const Value&)>& key, bool reverse) {
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (auto& v : items) keyed.emplace_back(key(v), std::move(v));
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    return reverse ? py_lt(b.first, a.first) : py_lt(a.first, b.first);
  });
  std::vector<Value> out;
  out.reserve(keyed.size());
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return out;
}

// select / reject / selectattr / rejectattr.
Value select(const Value& seq, CallArgs& a, Interp& in, bool attr, bool keep) {
  size_t first = 0;
  std::string attribute;
  if (attr) {
    if (a.pos.empty()) fail("missing parameter for attribute name");
    attribute = soft_str(a.pos[0]);
    first = 1;
  }
  std::string test;
  CallArgs targs;
  if (a.pos.size() > first) {
    test = soft_str(a.pos[first]);
    targs.pos.assign(a.pos.begin() + static_cast<std::ptrdiff_t>(first + 1), a.pos.end());
    targs.kw = a.kw;
  }
  std::vector<Value> out;
  if (!seq.truthy()) return Value::make_list();  // jinja2: `if value:` first, so None selects nothing
  for (const Value& item : iterate(seq)) {
    in.step();
    const Value v = attr ? attr_path(item, attribute) : item;
    CallArgs ta = targs;
    const bool pass = test.empty() ? v.truthy() : call_test(test, v, ta, in);
    if (pass == keep) out.push_back(item);
  }
  return Value::make_list(std::move(out));
}

Value map_filter(const Value& seq, CallArgs& a, Interp& in) {
  std::vector<Value> out;
  if (!seq.truthy()) return Value::make_list();  // jinja2: `if value:` first
  const Value* attribute = nullptr;
  const Value* dflt = nullptr;
  for (const auto& [k, v] : a.kw) {
    if (k == "attribute") attribute = &v;
    else if (k == "default") dflt = &v;
  }
  if (attribute || (a.pos.empty() && !a.kw.empty())) {
    if (!attribute) fail("map: missing attribute");
    const std::string path = soft_str(*attribute);
    for (const Value& item : iterate(seq)) {
      Value v = attr_path(item, path);
      out.push_back(v.is_undefined() && dflt ? *dflt : std::move(v));
    }
    return Value::make_list(std::move(out));
  }
  if (a.pos.empty()) fail("map requires a filter argument");
  const std::string filter = soft_str(a.pos[0]);
  CallArgs fargs;
  fargs.pos.assign(a.pos.begin() + 1, a.pos.end());
  fargs.kw = a.kw;
  for (const Value& item : iterate(seq)) {
    in.step();
    CallArgs fa = fargs;
    out.push_back(call_filter(filter, item, fa, in));
  }
  return Value::make_list(std::move(out));
}

Value tojson(const Value& v, CallArgs& a, Interp& in) {
  // transformers: json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
  Args args("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonOptions o;
  o.ensure_ascii = args.get_bool(0, false);
  if (args.has(1) && !args.get(1)->is_none()) {
    const Value& ind = *args.get(1);
    if (ind.is_string()) o.indent = ind.str();
    else if (ind.is_number() && !ind.is_float()) o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(ind.as_int(), 0, 1000)), ' ');
    else fail("tojson: indent must be an integer or a string");
    o.item_sep = ",";
  }
  if (args.has(2) && !args.get(2)->is_none()) {
    const Value& sep = *args.get(2);
    if (!sep.is_list() || sep.list().items.size() != 2 || !sep.list().items[0].is_string() || !sep.list().items[1].is_string())
      fail("tojson: separators must be a pair of strings");
    o.item_sep = sep.list().items[0].str();
    o.key_sep = sep.list().items[1].str();
  }
  o.sort_keys = args.get_bool(3, false);
  std::string s = to_json(v, o);
  in.check_size(s.size());
  return Value(std::move(s));
}

Value indent(const Value& v, CallArgs& a, Interp& in) {
  Args args("indent", a, {"width", "first", "blank"});
  std::string ind;
  if (args.has(0) && args.get(0)->is_string()) ind = args.get(0)->str();
  else ind = std::string(static_cast<size_t>(std::clamp<int64_t>(args.get_int(0, 4), 0, 10000)), ' ');
  const bool first = args.get_bool(1, false), blank = args.get_bool(2, false);
  const std::vector<std::string> lines = pystr::splitlines(soft_str(v) + "\n", false);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) {
      out += '\n';
      if (blank || !lines[i].empty()) out += ind;
    }
    out += lines[i];
    in.check_length(out.size());
  }
  in.check_size(out.size());
  return Value(first ? ind + out : out);
}

Value round_filter(const Value& v, CallArgs& a, Interp&) {
  Args args("round", a, {"precision", "method"});
  const int64_t prec = args.get_int(0, 0);
  const std::string method = args.get_str(1, "common");
  if (method != "common" && method != "ceil" && method != "floor") fail("method must be 'common', 'ceil' or 'floor'");
  if (!v.is_number()) fail("round: a number is required, not '" + v.type_name() + "'");
  if (!v.is_float() && method == "common") return Value(v.as_int());  // Python round(int, n) is an int
  const double x = v.as_double();
  const double scale = std::pow(10.0, static_cast<double>(prec));
  if (method == "ceil") return Value(std::ceil(x * scale) / scale);
  if (method == "floor") return Value(std::floor(x * scale) / scale);
  // Python's round: correctly rounded, ties to even, via the shortest decimal repr.
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(std::clamp<int64_t>(prec, 0, 30)), x);
  if (prec < 0) return Value(std::nearbyint(x * scale) / scale);
  return Value(std::strtod(buf, nullptr));
}

std::optional<int64_t> parse_int(const std::string& s0, int64_t base) {
  std::string s = pystr::strip(s0, std::nullopt, true, true);
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, static_cast<int>(base));
  if (errno || *end) return std::nullopt;
  return v;
}

std::optional<double> parse_float(const std::string& s0) {
  std::string s = pystr::strip(s0, std::nullopt, true, true);
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (*end) return std::nullopt;
  return d;
}

Value int_filter(const Value& v, CallArgs& a, Interp&) {
  Args args("int", a, {"default", "base"});
  const Value dflt = args.get_or(0, Value(0));
  if (v.is_number()) {
    if (!v.is_float()) return Value(v.as_int());
    const double d = v.as_double();
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return dflt;
    return Value(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    if (auto i = parse_int(v.str(), args.get_int(1, 10))) return Value(*i);
    if (auto d = parse_float(v.str()); d && std::isfinite(*d) && std::fabs(*d) < 9.2e18) return Value(static_cast<int64_t>(*d));
  }
  return dflt;
}

Value float_filter(const Value& v, CallArgs& a, Interp&) {
  Args args("float", a, {"default"});
  if (v.is_number()) return Value(v.as_double());
  if (v.is_string())
    if (auto d = parse_float(v.str())) return Value(*d);
  return args.get_or(0, Value(0.0));
}

Value join(const Value& v, CallArgs& a, Interp& in) {
  Args args("join", a, {"d", "attribute"});
  const std::string sep = args.get_str(0, "");
  const std::string attr = args.has(1) && !args.get(1)->is_none() ? soft_str(*args.get(1)) : "";
  std::string out;
  bool first = true;
  for (const Value& item : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += soft_str(attr.empty() ? item : attr_path(item, attr));
    in.check_length(out.size());
  }
  in.check_size(out.size());
  return Value(std::move(out));
}

Value jinja_title(const Value& v) {
  // jinja2: words start after runs of whitespace, '-', '(', '{', '[', '<'.
  std::string out;
  bool word_start = true;
  for (char32_t c : text::decode(soft_str(v))) {
    const bool sep = text::is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    text::append(out, sep ? c : word_start ? text::to_upper(c) : text::to_lower(c));
    word_start = sep;
  }
  return Value(std::move(out));
}

Value escape(const Value& v) { return v.is_markup() ? v : Value::markup(html_escape(soft_str(v))); }

// Filters that call a str method on soft_str(value) keep a Markup a Markup.
Value like(const Value& v, std::string s) { return v.is_markup() ? Value::markup(std::move(s)) : Value(std::move(s)); }

const std::unordered_map<std::string, Filter>& filters() {
  static const std::unordered_map<std::string, Filter> f = {
      {"abs", [](const Value& v, CallArgs&, Interp&) -> Value {
         if (!v.is_number()) fail("bad operand type for abs(): '" + v.type_name() + "'");
         if (v.is_float()) return Value(std::fabs(v.as_double()));
         if (v.as_int() == INT64_MIN) fail("integer overflow (beyond 64 bits)");
         return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
       }},
      {"attr", [](const Value& v, CallArgs& a, Interp&) { Args g("attr", a, {"name"}); return get_attr(v, g.get_str(0, "")); }},
      {"batch", [](const Value& v, CallArgs& a, Interp&) {
         Args g("batch", a, {"linecount", "fill_with"});
         const int64_t n = g.get_int(0, 1);
         if (n <= 0) fail("batch: linecount must be positive");
         std::vector<Value> out, cur;
         for (const Value& item : iterate(v)) {
           cur.push_back(item);
           if (static_cast<int64_t>(cur.size()) == n) out.push_back(Value::make_list(std::exchange(cur, {})));
         }
         if (!cur.empty()) {
           if (g.has(1)) while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*g.get(1));
           out.push_back(Value::make_list(std::move(cur)));
         }
         return Value::make_list(std::move(out));
       }},
      {"capitalize", [](const Value& v, CallArgs&, Interp&) { return like(v, text::py_capitalize(soft_str(v))); }},
      {"center", [](const Value& v, CallArgs& a, Interp& in) {
         Args g("center", a, {"width"});
         const int64_t w = std::min<int64_t>(g.get_int(0, 80), 1 << 20);
         in.check_size(static_cast<size_t>(std::max<int64_t>(w, 0)));
         return like(v, pystr::pad(soft_str(v), w, ' ', 0));
       }},
      {"count", [](const Value& v, CallArgs&, Interp&) { return Value(py_len(v)); }},
      {"default", [](const Value& v, CallArgs& a, Interp&) {
         Args g("default", a, {"default_value", "boolean"});
         if (v.is_undefined() || (g.get_bool(1, false) && !v.truthy())) return g.get_or(0, Value(""));
         return v;
       }},
      {"dictsort", [](const Value& v, CallArgs& a, Interp&) {
         Args g("dictsort", a, {"case_sensitive", "by", "reverse"});
         if (!v.is_mapping()) fail("dictsort: a mapping is required, not '" + v.type_name() + "'");
         const std::string by = g.get_str(1, "key");
         if (by != "key" && by != "value") fail("You can only sort by either 'key' or 'value'");
         const size_t pos = by == "key" ? 0 : 1;
         const bool cs = g.get_bool(0, false);
         std::vector<Value> items;
         for (const auto& [k, x] : v.dict().entries()) items.push_back(Value::make_tuple({k, x}));
         return Value::make_list(sorted(std::move(items), [&](const Value& t) { return ignore_case(t.list().items[pos], cs); },
                                   g.get_bool(2, false)));
       }},
      {"escape", [](const Value& v, CallArgs&, Interp&) { return escape(v); }},
      {"first", [](const Value& v, CallArgs&, Interp&) {
         std::vector<Value> items = iterate(v);
         return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
       }},
      {"float", float_filter},
      {"format", [](const Value& v, CallArgs& a, Interp& in) {
         if (!a.pos.empty() && !a.kw.empty()) fail("can't handle positional and keyword arguments at the same time");
         if (!a.kw.empty()) fail("format with keyword arguments is not supported");
         return binary_op("%", v.is_string() ? v : Value(soft_str(v)), Value::make_tuple(a.pos), in);
       }},
      {"indent", indent},
      {"int", int_filter},
      {"items", [](const Value& v, CallArgs&, Interp&) {
         if (v.is_undefined()) return Value::make_list();
         if (!v.is_mapping()) fail("Can only get item pairs from a mapping.");
         std::vector<Value> items;
         for (const auto& [k, x] : v.dict().entries()) items.push_back(Value::make_tuple({k, x}));
         return Value::make_list(std::move(items));
       }},
      {"join", join},
      {"last", [](const Value& v, CallArgs&, Interp&) {
         std::vector<Value> items = iterate(v);
         return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
       }},
      {"list", [](const Value& v, CallArgs&, Interp&) { return Value::make_list(iterate(v)); }},
      {"lower", [](const Value& v, CallArgs&, Interp&) { return like(v, text::lower(soft_str(v))); }},
      {"map", map_filter},
      {"max", [](const Value& v, CallArgs& a, Interp&) {
         Args g("max", a, {"case_sensitive", "attribute"});
         std::vector<Value> items = iterate(v);
         if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
         auto key = key_fn(g.get(1), g.get_bool(0, false));
         size_t best = 0;
         for (size_t i = 1; i < items.size(); ++i)
           if (py_lt(key(items[best]), key(items[i]))) best = i;
         return items[best];
       }},
      {"min", [](const Value& v, CallArgs& a, Interp&) {
         Args g("min", a, {"case_sensitive", "attribute"});
         std::vector<Value> items = iterate(v);
         if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
         auto key = key_fn(g.get(1), g.get_bool(0, false));
         size_t best = 0;
         for (size_t i = 1; i < items.size(); ++i)
           if (py_lt(key(items[i]), key(items[best]))) best = i;
         return items[best];
       }},
      {"reject", [](const Value& v, CallArgs& a, Interp& in) { return select(v, a, in, false, false); }},
      {"rejectattr", [](const Value& v, CallArgs& a, Interp& in) { return select(v, a, in, true, false); }},
      {"replace", [](const Value& v, CallArgs& a, Interp& in) {
         Args g("replace", a, {"old", "new", "count"});
         std::string r = pystr::replace(soft_str(v), g.get_str(0, ""), g.get_str(1, ""),
                                        g.has(2) && !g.get(2)->is_none() ? g.get_int(2, -1) : -1);
         in.check_size(r.size());
         return Value(std::move(r));
       }},
      {"reverse", [](const Value& v, CallArgs&, Interp&) {
         if (v.is_string()) {
           std::u32string c = text::decode(v.str());
           std::reverse(c.begin(), c.end());
           return Value(text::encode(c));
         }
         std::vector<Value> items = iterate(v);
         std::reverse(items.begin(), items.end());
         return Value::make_list(std::move(items));
       }},
      {"round", round_filter},
      {"safe", [](const Value& v, CallArgs&, Interp&) { return Value::markup(soft_str(v)); }},
      {"select", [](const Value& v, CallArgs& a, Interp& in) { return select(v, a, in, false, true); }},
      {"selectattr", [](const Value& v, CallArgs& a, Interp& in) { return select(v, a, in, true, true); }},
      {"sort", [](const Value& v, CallArgs& a, Interp&) {
         Args g("sort", a, {"reverse", "case_sensitive", "attribute"});
         return Value::make_list(sorted(iterate(v), key_fn(g.get(2), g.get_bool(1, false)), g.get_bool(0, false)));
       }},
      {"string", [](const Value& v, CallArgs&, Interp&) { return v.is_string() ? v : Value(soft_str(v)); }},
      {"sum", [](const Value& v, CallArgs& a, Interp& in) {
         Args g("sum", a, {"attribute", "start"});
         Value acc = g.get_or(1, Value(0));
         const std::string attr = g.has(0) && !g.get(0)->is_none() ? soft_str(*g.get(0)) : "";
         for (const Value& item : iterate(v)) acc = binary_op("+", acc, attr.empty() ? item : attr_path(item, attr), in);
         return acc;
       }},
      {"title", [](const Value& v, CallArgs&, Interp&) { return jinja_title(v); }},
      {"tojson", tojson},
      {"trim", [](const Value& v, CallArgs& a, Interp&) {
         Args g("trim", a, {"chars"});
         std::optional<std::string> chars;
         if (g.has(0) && !g.get(0)->is_none()) chars = soft_str(*g.get(0));
         return like(v, pystr::strip(soft_str(v), chars, true, true));
       }},
      {"unique", [](const Value& v, CallArgs& a, Interp&) {
         Args g("unique", a, {"case_sensitive", "attribute"});
         auto key = key_fn(g.get(1), g.get_bool(0, false));
         std::vector<Value> out;
         Value seen = Value::make_dict();
         for (const Value& item : iterate(v)) {
           const Value k = key(item);
           if (seen.dict().find(k)) continue;
           seen.dict().set(k, Value(true));
           out.push_back(item);
         }
         return Value::make_list(std::move(out));
       }},
      {"upper", [](const Value& v, CallArgs&, Interp&) { return like(v, text::upper(soft_str(v))); }},
      {"wordcount", [](const Value& v, CallArgs&, Interp&) {
         int64_t n = 0;
         bool in_word = false;
         for (char32_t c : text::decode(soft_str(v))) {
           const bool w = text::is_alpha(c) || text::is_numeric(c) || c == '_';
           n += w && !in_word;
           in_word = w;
         }
         return Value(n);
       }},
  };
  return f;
}

const std::unordered_map<std::string, std::string>& aliases() {
  static const std::unordered_map<std::string, std::string> a = {
      {"d", "default"}, {"e", "escape"}, {"length", "count"}, {"forceescape", "escape"}};
  return a;
}

const char* const kUnsupportedFilters[] = {"filesizeformat", "groupby", "pprint", "random", "slice", "striptags",
                                           "truncate", "urlencode", "urlize", "wordwrap", "xmlattr"};

const std::string& canonical(const std::string& name) {
  auto it = aliases().find(name);
  return it == aliases().end() ? name : it->second;
}

}  // namespace

Support filter_support(std::string_view name) {
  const std::string n(name);
  if (filters().count(canonical(n))) return Support::Supported;
  for (const char* u : kUnsupportedFilters)
    if (n == u) return Support::Unsupported;
  return Support::Unknown;
}

Value call_filter(const std::string& name, const Value& subject, CallArgs& args, Interp& in) {
  auto it = filters().find(canonical(name));
  if (it == filters().end()) {
    if (filter_support(name) == Support::Unsupported) fail("unsupported filter '" + name + "'");
    fail("no filter named '" + name + "'");
  }
  return it->second(subject, args, in);
}

Args::Args(std::string fn, CallArgs& a, std::initializer_list<const char*> names)
    : fn_(std::move(fn)), vals_(names.size(), nullptr) {
  if (a.pos.size() > names.size())
    fail(fn_ + "() takes at most " + std::to_string(names.size()) + " argument(s) (" + std::to_string(a.pos.size()) + " given)");
  for (size_t i = 0; i < a.pos.size(); ++i) vals_[i] = &a.pos[i];
  for (const auto& [k, v] : a.kw) {
    size_t i = 0;
    for (const char* n : names) {
      if (k == n) break;
      ++i;
    }
    if (i == names.size()) fail(fn_ + "() got an unexpected keyword argument '" + k + "'");
    if (vals_[i]) fail(fn_ + "() got multiple values for argument '" + k + "'");
    vals_[i] = &v;
  }
}

int64_t Args::get_int(size_t i, int64_t dflt) const {
  if (!vals_[i] || vals_[i]->is_none()) return dflt;
  if (!vals_[i]->is_number() || vals_[i]->is_float()) fail(fn_ + "(): an integer is required, not '" + vals_[i]->type_name() + "'");
  return vals_[i]->as_int();
}

std::string Args::get_str(size_t i, std::string dflt) const {
  if (!vals_[i]) return dflt;
  return soft_str(*vals_[i]);
}

}  // namespace moe::jinja
