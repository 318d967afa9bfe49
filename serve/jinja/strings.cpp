#include "serve/jinja/strings.h"

#include <algorithm>

#include "serve/jinja/error.h"
#include "serve/jinja/text.h"

namespace moe::jinja::pystr {

std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  const std::u32string cps = text::decode(s);
  const std::u32string set = chars ? text::decode(*chars) : std::u32string();
  auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : text::is_space(c); };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b])) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1])) --e;
  return text::encode(std::u32string_view(cps).substr(b, e - b));
}

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) detail::fail("empty separator");
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      const size_t q = s.find(*sep, pos);
      if (q == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, q - pos));
      pos = q + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  const std::u32string cps = text::decode(s);
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && text::is_space(cps[i])) ++i;
    if (i == cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      size_t e = cps.size();
      while (e > i && text::is_space(cps[e - 1])) --e;
      out.push_back(text::encode(std::u32string_view(cps).substr(i, e - i)));
      return out;
    }
    size_t j = i;
    while (j < cps.size() && !text::is_space(cps[j])) ++j;
    out.push_back(text::encode(std::u32string_view(cps).substr(i, j - i)));
    i = j;
  }
  return out;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  if (maxsplit < 0) return split(s, sep, maxsplit);
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) detail::fail("empty separator");
    size_t end = s.size();
    while (static_cast<int64_t>(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t q = s.rfind(*sep, end - sep->size());
      if (q == std::string_view::npos) break;
      out.emplace_back(s.substr(q + sep->size(), end - q - sep->size()));
      end = q;
    }
    out.emplace_back(s.substr(0, end));
    std::reverse(out.begin(), out.end());
    return out;
  }
  const std::u32string cps = text::decode(s);
  size_t e = cps.size();
  while (e > 0) {
    while (e > 0 && text::is_space(cps[e - 1])) --e;
    if (e == 0) break;
    if (static_cast<int64_t>(out.size()) == maxsplit) {
      size_t b = 0;
      while (b < e && text::is_space(cps[b])) ++b;
      out.push_back(text::encode(std::u32string_view(cps).substr(b, e - b)));
      break;
    }
    size_t b = e;
    while (b > 0 && !text::is_space(cps[b - 1])) --b;
    out.push_back(text::encode(std::u32string_view(cps).substr(b, e - b)));
    e = b;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
  const std::u32string cps = text::decode(s);
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (!text::is_linebreak(cps[i])) continue;
    size_t e = i + 1;
    if (cps[i] == '\r' && e < cps.size() && cps[e] == '\n') ++e;
    out.push_back(text::encode(std::u32string_view(cps).substr(b, (keepends ? e : i) - b)));
    b = e;
    i = e - 1;
  }
  if (b < cps.size()) out.push_back(text::encode(std::u32string_view(cps).substr(b)));
  return out;
}

std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count) {
  std::string out;
  if (old.empty()) {  // Python inserts repl around every code point
    const std::u32string cps = text::decode(s);
    int64_t n = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || n < count) {
        out += repl;
        ++n;
      }
      if (i < cps.size()) text::append(out, cps[i]);
    }
    return out;
  }
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    const size_t q = s.find(old, pos);
    if (q == std::string_view::npos) break;
    out.append(s.substr(pos, q - pos));
    out.append(repl);
    pos = q + old.size();
    ++n;
  }
  out.append(s.substr(pos));
  return out;
}

int64_t find(std::string_view s, std::string_view sub, bool reverse) {
  const size_t q = reverse ? s.rfind(sub) : s.find(sub);
  if (q == std::string_view::npos) return -1;
  return static_cast<int64_t>(text::length(s.substr(0, q)));
}

int64_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(text::length(s)) + 1;
  int64_t n = 0;
  for (size_t q = s.find(sub); q != std::string_view::npos; q = s.find(sub, q + sub.size())) ++n;
  return n;
}

std::string pad(std::string_view s, int64_t width, char32_t fill, int where) {
  const auto n = static_cast<int64_t>(text::length(s));
  if (width <= n) return std::string(s);
  const int64_t total = width - n;
  // Python's center puts the extra space on the right when the string length is even... exactly:
  // left = total / 2 + (total & width & 1).
  int64_t left = where < 0 ? 0 : where > 0 ? total : total / 2 + (total & width & 1);
  std::string f;
  text::append(f, fill);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += f;
  out += s;
  for (int64_t i = 0; i < total - left; ++i) out += f;
  return out;
}

}  // namespace moe::jinja::pystr
