#include "serve/jinja/text.h"

#include <utf8proc.h>

namespace moe::jinja::text {

namespace {
utf8proc_category_t cat(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)); }
bool valid(char32_t c) { return c < 0x110000 && !(c >= 0xD800 && c < 0xE000); }

template <class F>
std::string map_each(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : decode(s)) append(out, f(c));
  return out;
}
}  // namespace

std::u32string decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    int n = b0 >= 0xF0 && b0 < 0xF5 ? 3 : b0 >= 0xE0 ? 2 : b0 >= 0xC2 && b0 < 0xE0 ? 1 : -1;
    if (b0 >= 0xF5) n = -1;
    char32_t c = n == 3 ? b0 & 0x07 : n == 2 ? b0 & 0x0F : b0 & 0x1F;
    bool ok = n > 0 && i + n < s.size();
    for (int k = 1; ok && k <= n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) ok = false;
      c = (c << 6) | (b & 0x3F);
    }
    if (ok && ((n == 2 && c < 0x800) || (n == 3 && (c < 0x10000 || c > 0x10FFFF)) || (c >= 0xD800 && c < 0xE000)))
      ok = false;
    if (!ok) {
      out.push_back(0xDC00 + b0);  // surrogateescape: the byte comes back out unchanged
      ++i;
      continue;
    }
    out.push_back(c);
    i += n + 1;
  }
  return out;
}

void append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c >= 0xDC80 && c < 0xDD00) {
    out.push_back(static_cast<char>(c - 0xDC00));  // an escaped invalid byte
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::string encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append(out, c);
  return out;
}

size_t length(std::string_view s) {
  bool ascii = true;
  for (char ch : s) ascii &= static_cast<unsigned char>(ch) < 0x80;
  return ascii ? s.size() : decode(s).size();
}

bool is_space(char32_t c) {
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x85) return true;
  if (c < 0xA0 || !valid(c)) return false;
  const auto k = cat(c);
  return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

bool is_printable(char32_t c) {
  if (c == ' ') return true;
  if (!valid(c)) return false;
  switch (cat(c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
      return false;
    default:
      return true;
  }
}

bool is_linebreak(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}

bool is_alpha(char32_t c) {
  if (!valid(c)) return false;
  const auto k = cat(c);
  return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}
bool is_digit(char32_t c) { return valid(c) && cat(c) == UTF8PROC_CATEGORY_ND; }
bool is_numeric(char32_t c) {
  if (!valid(c)) return false;
  const auto k = cat(c);
  return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}
bool is_upper(char32_t c) { return valid(c) && utf8proc_isupper(static_cast<utf8proc_int32_t>(c)); }
bool is_lower(char32_t c) { return valid(c) && utf8proc_islower(static_cast<utf8proc_int32_t>(c)); }
bool is_cased(char32_t c) { return is_upper(c) || is_lower(c) || (valid(c) && cat(c) == UTF8PROC_CATEGORY_LT); }
char32_t to_upper(char32_t c) { return valid(c) ? utf8proc_toupper(static_cast<utf8proc_int32_t>(c)) : c; }
char32_t to_lower(char32_t c) { return valid(c) ? utf8proc_tolower(static_cast<utf8proc_int32_t>(c)) : c; }
char32_t to_title(char32_t c) { return valid(c) ? utf8proc_totitle(static_cast<utf8proc_int32_t>(c)) : c; }

// Python's full case mappings (SpecialCasing.txt) for the characters that expand.
const char* upper_special(char32_t c) {
  switch (c) {
    case 0xDF: return "SS";
    case 0x149: return "\u02BCN";
    case 0xFB00: return "FF";
    case 0xFB01: return "FI";
    case 0xFB02: return "FL";
    case 0xFB03: return "FFI";
    case 0xFB04: return "FFL";
    case 0xFB05: case 0xFB06: return "ST";
    default: return nullptr;
  }
}

std::string upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : decode(s)) {
    if (const char* sp = upper_special(c)) out += sp;
    else append(out, to_upper(c));
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : decode(s)) {
    if (c == 0x130) out += "i\u0307";  // İ -> i + combining dot above
    else append(out, to_lower(c));
  }
  return out;
}
std::string swapcase(std::string_view s) {
  return map_each(s, [](char32_t c) { return is_upper(c) ? to_lower(c) : is_lower(c) ? to_upper(c) : c; });
}

std::string py_title(std::string_view s) {
  // Python: a cased character after an uncased one starts a word (title case), others are lowered.
  std::string out;
  bool prev_cased = false;
  for (char32_t c : decode(s)) {
    append(out, prev_cased ? to_lower(c) : to_title(c));
    prev_cased = is_cased(c);
  }
  return out;
}

std::string py_capitalize(std::string_view s) {
  std::string out;
  bool first = true;
  for (char32_t c : decode(s)) {
    append(out, first ? to_title(c) : to_lower(c));
    first = false;
  }
  return out;
}

}  // namespace moe::jinja::text
