#include "serve/parsers/stream_text.h"

#include <cstring>

namespace moe::serve::parsers {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || c == ':';
}

Lit match_lit(std::string_view s, std::string_view marker) {
  if (s.size() >= marker.size()) return s.substr(0, marker.size()) == marker ? Lit::yes : Lit::no;
  return marker.substr(0, s.size()) == s ? Lit::more : Lit::no;
}

MarkerHit find_marker(std::string_view s, Markers markers) {
  // Markers are short and few; only positions holding some marker's first byte are tried.
  char firsts[16];
  size_t n_first = 0;
  for (std::string_view m : markers)
    if (n_first < sizeof firsts && !std::memchr(firsts, m.front(), n_first)) firsts[n_first++] = m.front();
  for (size_t i = 0; i < s.size(); ++i) {
    if (!std::memchr(firsts, s[i], n_first)) continue;
    const std::string_view tail = s.substr(i);
    bool partial = false;
    int k = 0;
    for (std::string_view m : markers) {
      const Lit r = match_lit(tail, m);
      if (r == Lit::yes) return {i, k};
      partial |= r == Lit::more;
      ++k;
    }
    if (partial) return {i, -1};
  }
  return {};
}

void TextChannel::write(std::string_view s, std::string& out) {
  if (!strip_.empty()) {
    const size_t k = s.find_first_not_of(strip_);
    if (k == std::string_view::npos) return;
    s.remove_prefix(k);
    strip_ = {};
  }
  if (s.empty()) return;
  if (boundary_) {
    const size_t k = s.find_first_not_of(" \t\r\n");
    held_.append(s.substr(0, k));
    if (k == std::string_view::npos) return;
    s.remove_prefix(k);
    boundary_ = false;
  }
  if (!hold_) {
    flush(out);
    out.append(s);
    return;
  }
  const size_t last = s.find_last_not_of('\n');
  if (last == std::string_view::npos) {
    held_.append(s);
    return;
  }
  flush(out);
  out.append(s.substr(0, last + 1));
  held_.assign(s.substr(last + 1));
}

void TextChannel::flush(std::string& out) {
  out.append(held_);
  held_.clear();
}

void TextChannel::finish(std::string& out) {
  if (!boundary_) flush(out);
  held_.clear();
}

void Emitter::call_begin(int index, std::string id, std::string name) {
  d.tool_calls.push_back({index, std::move(id), std::move(name), {}});
}

void Emitter::call_args(int index, std::string_view fragment) {
  if (fragment.empty()) return;
  if (!d.tool_calls.empty() && d.tool_calls.back().index == index) {
    d.tool_calls.back().arguments.append(fragment);
    return;
  }
  d.tool_calls.push_back({index, {}, {}, std::string(fragment)});
}

}  // namespace moe::serve::parsers
