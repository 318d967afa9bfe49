#include "serve/jinja/format.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "serve/jinja/error.h"
#include "serve/jinja/text.h"

namespace moe::jinja {

namespace {

void check_depth(int depth) {
  if (depth > kMaxNesting) detail::fail("value nested more than " + std::to_string(kMaxNesting) + " deep (or cyclic)");
}

void hex_escape(std::string& out, const char* prefix, unsigned v, int width) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%s%0*x", prefix, width, v);
  out += buf;
}

void repr_to(std::string& out, const Value& v, int depth);

void repr_items(std::string& out, const std::vector<Value>& items, int depth) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    repr_to(out, items[i], depth + 1);
  }
}

void dict_repr(std::string& out, const Dict& d, int depth) {
  out += '{';
  bool first = true;
  for (const auto& [k, v] : d.entries()) {
    if (!first) out += ", ";
    first = false;
    repr_to(out, k, depth + 1);
    out += ": ";
    repr_to(out, v, depth + 1);
  }
  out += '}';
}

void repr_to(std::string& out, const Value& v, int depth) {
  check_depth(depth);
  switch (v.kind()) {
    case Value::Kind::Undefined: out += "Undefined"; return;
    case Value::Kind::String: out += py_repr_string(v.str()); return;
    case Value::Kind::List: {
      const List& l = v.list();
      switch (l.kind) {
        case ListKind::Tuple:
          out += '(';
          repr_items(out, l.items, depth);
          if (l.items.size() == 1) out += ',';
          out += ')';
          return;
        case ListKind::DictKeys: out += "dict_keys(["; break;
        case ListKind::DictValues: out += "dict_values(["; break;
        case ListKind::DictItems: out += "dict_items(["; break;
        case ListKind::List: out += '['; break;
      }
      repr_items(out, l.items, depth);
      out += l.kind == ListKind::List ? "]" : "])";
      return;
    }
    case Value::Kind::Dict: {
      const Dict& d = v.dict();
      if (d.kind == DictKind::Namespace) {
        out += "<Namespace ";
        dict_repr(out, d, depth);
        out += '>';
      } else if (d.kind == DictKind::Loop) {
        const Value* i = d.find("index");
        const Value* n = d.find("length");
        out += "<LoopContext " + (i ? py_str(*i) : "?") + "/" + (n ? py_str(*n) : "?") + ">";
      } else {
        dict_repr(out, d, depth);
      }
      return;
    }
    case Value::Kind::Function: out += "<function " + v.function().name + ">"; return;
    default: out += py_str(v); return;
  }
}

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  const bool ascii = std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  auto one = [&](char32_t c) {
    switch (c) {
      case '"': out += "\\\""; return;
      case '\\': out += "\\\\"; return;
      case '\n': out += "\\n"; return;
      case '\r': out += "\\r"; return;
      case '\t': out += "\\t"; return;
      case '\b': out += "\\b"; return;
      case '\f': out += "\\f"; return;
      default: break;
    }
    if (c < 0x20) {
      hex_escape(out, "\\u", c, 4);
    } else if (c < 0x80 || !ensure_ascii) {
      text::append(out, c);
    } else if (c < 0x10000) {
      hex_escape(out, "\\u", c, 4);
    } else {
      const char32_t u = c - 0x10000;
      hex_escape(out, "\\u", 0xD800 + (u >> 10), 4);
      hex_escape(out, "\\u", 0xDC00 + (u & 0x3FF), 4);
    }
  };
  if (ascii) {
    for (char c : s) one(static_cast<unsigned char>(c));
  } else {
    for (char32_t c : text::decode(s)) one(c);
  }
  out += '"';
}

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return float_repr(d);
}

std::string json_key(const Value& k) {
  switch (k.kind()) {
    case Value::Kind::String: return k.str();
    case Value::Kind::Bool: return k.as_bool() ? "true" : "false";
    case Value::Kind::Int: return std::to_string(k.as_int());
    case Value::Kind::Float: return json_float(k.as_double());
    case Value::Kind::None: return "null";
    default: detail::fail("keys must be str, int, float, bool or None, not " + k.type_name());
  }
}

void json_to(std::string& out, const Value& v, const JsonOptions& o, int depth) {
  check_depth(depth);
  auto newline = [&](int level) {
    out += '\n';
    for (int i = 0; i < level; ++i) out += *o.indent;
  };
  switch (v.kind()) {
    case Value::Kind::None: out += "null"; return;
    case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::Int: out += std::to_string(v.as_int()); return;
    case Value::Kind::Float: out += json_float(v.as_double()); return;
    case Value::Kind::String: json_string(out, v.str(), o.ensure_ascii); return;
    case Value::Kind::List: {
      const auto& items = v.list().items;
      if (v.list().kind == ListKind::DictKeys || v.list().kind == ListKind::DictValues ||
          v.list().kind == ListKind::DictItems)
        break;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_sep;
        if (o.indent) newline(depth + 1);
        json_to(out, items[i], o, depth + 1);
      }
      if (o.indent) newline(depth);
      out += ']';
      return;
    }
    case Value::Kind::Dict: {
      const Dict& d = v.dict();
      if (d.kind != DictKind::Dict) break;
      if (d.size() == 0) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> entries;
      entries.reserve(d.size());
      for (const auto& [k, e] : d.entries()) entries.emplace_back(json_key(k), &e);
      if (o.sort_keys)
        std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) out += o.item_sep;
        if (o.indent) newline(depth + 1);
        json_string(out, entries[i].first, o.ensure_ascii);
        out += o.key_sep;
        json_to(out, *entries[i].second, o, depth + 1);
      }
      if (o.indent) newline(depth);
      out += '}';
      return;
    }
    default: break;
  }
  detail::fail("Object of type " + v.type_name() + " is not JSON serializable");
}

}  // namespace

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  // Shortest round-trip digits, as Python's repr; then Python's choice of notation.
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  std::string out;
  size_t pos = 0;
  if (sci[0] == '-') {
    out += '-';
    pos = 1;
  }
  const size_t e = sci.find('e');
  std::string digits;
  for (size_t i = pos; i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  const int exp = std::stoi(sci.substr(e + 1));
  if (exp < -4 || exp >= 16) {
    out += digits[0];
    if (digits.size() > 1) out += "." + digits.substr(1);
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return out + eb;
  }
  if (exp < 0) return out + "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  const size_t int_digits = static_cast<size_t>(exp) + 1;
  if (digits.size() <= int_digits) return out + digits + std::string(int_digits - digits.size(), '0') + ".0";
  return out + digits.substr(0, int_digits) + "." + digits.substr(int_digits);
}

std::string py_repr_string(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : text::decode(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      hex_escape(out, "\\x", c, 2);
    } else if (c < 0x7F || text::is_printable(c)) {
      text::append(out, c);
    } else if (c >= 0xDC80 && c < 0xDD00) {
      text::append(out, c);  // a byte that was not UTF-8: passed through
    } else if (c <= 0xFF) {
      hex_escape(out, "\\x", c, 2);
    } else if (c <= 0xFFFF) {
      hex_escape(out, "\\u", c, 4);
    } else {
      hex_escape(out, "\\U", c, 8);
    }
  }
  out += quote;
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string py_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return "";
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return v.as_bool() ? "True" : "False";
    case Value::Kind::Int: return std::to_string(v.as_int());
    case Value::Kind::Float: return float_repr(v.as_double());
    case Value::Kind::String: return v.str();
    default: {
      std::string out;
      repr_to(out, v, 0);
      return out;
    }
  }
}

std::string py_repr(const Value& v) {
  std::string out;
  repr_to(out, v, 0);
  return out;
}

std::string to_json(const Value& v, const JsonOptions& o) {
  std::string out;
  json_to(out, v, o, 0);
  return out;
}

}  // namespace moe::jinja
