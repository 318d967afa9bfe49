// The globals a chat template sees: jinja2's range/namespace/dict (as transformers restricts
// them) and HF's raise_exception and strftime_now.
#include <ctime>

#include "serve/jinja/builtins.h"
#include "serve/jinja/error.h"
#include "serve/jinja/evaluator.h"
#include "serve/jinja/format.h"
#include "serve/jinja/ops.h"

namespace moe::jinja {

using detail::fail;

namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2's sandbox refuses longer ranges

Value range(CallArgs& a, Interp& in) {
  if (!a.kw.empty()) fail("range() takes no keyword arguments");
  if (a.pos.empty() || a.pos.size() > 3) fail("range expected 1 to 3 arguments, got " + std::to_string(a.pos.size()));
  for (const Value& v : a.pos) {
    if (v.is_undefined()) fail_undefined(v);
    if (!v.is_number() || v.is_float()) fail("'" + v.type_name() + "' object cannot be interpreted as an integer");
  }
  int64_t start = 0, stop, step = 1;
  if (a.pos.size() == 1) {
    stop = a.pos[0].as_int();
  } else {
    start = a.pos[0].as_int();
    stop = a.pos[1].as_int();
    if (a.pos.size() == 3) step = a.pos[2].as_int();
  }
  if (step == 0) fail("range() arg 3 must not be zero");
  const __int128 len = step > 0 ? (stop > start ? ((__int128)stop - start + step - 1) / step : 0)
                                : (start > stop ? ((__int128)start - stop - step - 1) / -step : 0);
  if (len > kMaxRange) fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  in.check_items(static_cast<size_t>(len));
  std::vector<Value> out;
  out.reserve(static_cast<size_t>(len));
  for (int64_t i = 0, v = start; i < static_cast<int64_t>(len); ++i, v += step) out.emplace_back(v);
  return Value::make_list(std::move(out));
}

// dict(mapping or pairs, **kw) and namespace(...) share this.
void fill(Dict& d, CallArgs& a, const char* fn) {
  if (a.pos.size() > 1) fail(std::string(fn) + " expected at most 1 positional argument, got " + std::to_string(a.pos.size()));
  if (!a.pos.empty()) {
    const Value& src = a.pos[0];
    if (src.is_mapping()) {
      for (const auto& [k, v] : src.dict().entries()) d.set(k, v);
    } else {
      for (const Value& pair : iterate(src)) {
        const std::vector<Value> kv = iterate(pair);
        if (kv.size() != 2) fail(std::string(fn) + ": a sequence element has length " + std::to_string(kv.size()) + "; 2 is required");
        d.set(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : a.kw) d.set(std::string_view(k), v);
}

Value strftime_now(CallArgs& a, Interp& in) {
  Args g("strftime_now", a, {"format"});
  if (!g.has(0) || !g.get(0)->is_string()) fail("strftime_now() needs a format string");
  std::tm tm{};
  if (in.options().now) {
    tm = in.options().now();
  } else {
    const std::time_t t = std::time(nullptr);
    localtime_r(&t, &tm);
  }
  const std::string& fmt = g.get(0)->str();
  if (fmt.empty()) return Value("");
  for (size_t cap = 256; cap <= (size_t(1) << 20); cap *= 4) {
    std::string buf(cap, '\0');
    const size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
    if (n > 0) {
      buf.resize(n);
      return Value(std::move(buf));
    }
  }
  return Value("");  // the format produces nothing (or too much)
}

}  // namespace

void add_globals(Scope& g) {
  g.vars["range"] = Value::function("range", range);
  g.vars["dict"] = Value::function("dict", [](CallArgs& a, Interp&) {
    Value d = Value::make_dict();
    fill(d.dict(), a, "dict");
    return d;
  });
  g.vars["namespace"] = Value::function("namespace", [](CallArgs& a, Interp&) {
    Value d = Value::make_dict(DictKind::Namespace);
    fill(d.dict(), a, "namespace");
    for (const auto& [k, v] : d.dict().entries())
      if (k.is_string() && !k.str().empty() && k.str()[0] == '_')
        fail("chat templates cannot store underscore-prefixed attributes on a namespace ('" + k.str() + "')");
    return d;
  });
  g.vars["raise_exception"] = Value::function("raise_exception", [](CallArgs& a, Interp&) -> Value {
    Args x("raise_exception", a, {"message"});
    throw detail::Raised(x.has(0) ? py_str(*x.get(0)) : std::string());
  });
  g.vars["strftime_now"] = Value::function("strftime_now", strftime_now);
}

}  // namespace moe::jinja
