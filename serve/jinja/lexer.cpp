#include "serve/jinja/lexer.h"

#include <cctype>
#include <cstdlib>

#include "serve/jinja/error.h"
#include "serve/jinja/text.h"

namespace moe::jinja {

namespace {

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Python's str.rstrip() / \s over UTF-8 text: whitespace at the end, as a byte count.
size_t rstrip_len(std::string_view s) {
  const std::u32string cps = text::decode(s);
  size_t n = cps.size();
  while (n > 0 && text::is_space(cps[n - 1])) --n;
  return text::encode(std::u32string_view(cps).substr(0, n)).size();
}
bool all_space(std::string_view s) {
  if (s.empty()) return false;
  for (char32_t c : text::decode(s))
    if (!text::is_space(c)) return false;
  return true;
}
size_t lstrip_len(std::string_view s) {  // bytes of leading whitespace
  size_t i = 0;
  while (i < s.size()) {
    if (ascii_space(s[i]) || (s[i] >= 0x1c && s[i] <= 0x1f)) {
      ++i;
      continue;
    }
    if (static_cast<unsigned char>(s[i]) < 0x80) break;
    const std::u32string one = text::decode(s.substr(i, 4)).substr(0, 1);
    if (one.empty() || !text::is_space(one[0])) break;
    i += text::encode(one).size();
  }
  return i;
}

std::string normalize(std::string_view src) {
  std::string s;
  s.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      s += '\n';
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      s += src[i];
    }
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();  // keep_trailing_newline=False
  return s;
}

int count_lines(std::string_view s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : s_(std::move(src)) {}

  std::vector<Token> run() {
    while (pos_ < s_.size()) root();
    out_.push_back({Tok::Eof, line_, ""});
    return std::move(out_);
  }

 private:
  std::string s_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> out_;

  [[noreturn]] void error(const std::string& msg) { throw Error(line_, msg); }

  bool at(size_t p, std::string_view lit) const { return s_.compare(p, lit.size(), lit) == 0; }

  // Text before a tag, with the tag's "-" (strip all whitespace) or lstrip_blocks applied.
  void emit_data(std::string_view raw, char sign, bool lstrip_applies) {
    std::string_view t = raw;
    if (sign == '-') {
      t = t.substr(0, rstrip_len(t));
    } else if (sign != '+' && lstrip_applies) {
      const size_t nl = t.rfind('\n');
      const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && all_space(t.substr(l_pos))) t = t.substr(0, l_pos);
    }
    if (!t.empty()) out_.push_back({Tok::Data, line_, std::string(t)});
    line_ += count_lines(raw);
  }

  // After "%}" / "#}": "-" strips all following whitespace, "+" nothing, else trim_blocks' one newline.
  void after_block_end(char sign) {
    if (sign == '-') {
      const size_t n = lstrip_len(std::string_view(s_).substr(pos_));
      line_ += count_lines(std::string_view(s_).substr(pos_, n));
      pos_ += n;
      line_starting_ = n > 0 && s_[pos_ - 1] == '\n';
      return;
    }
    line_starting_ = false;
    if (sign != '+' && pos_ < s_.size() && s_[pos_] == '\n') {
      ++pos_;
      ++line_;
      line_starting_ = true;
    }
  }

  // {% raw %} (already matched up to `end`): everything up to {% endraw %} is data.
  bool try_raw(size_t open) {
    size_t p = open + 2;
    if (p < s_.size() && (s_[p] == '-' || s_[p] == '+')) ++p;
    while (p < s_.size() && ascii_space(s_[p])) ++p;
    if (!at(p, "raw")) return false;
    p += 3;
    while (p < s_.size() && ascii_space(s_[p])) ++p;
    bool strip_after = false;
    if (at(p, "-%}")) {
      strip_after = true;
      p += 3;
    } else if (at(p, "%}")) {
      p += 2;
    } else {
      return false;
    }
    const char sign = s_[open + 2] == '-' || s_[open + 2] == '+' ? s_[open + 2] : 0;
    emit_data(std::string_view(s_).substr(pos_, open - pos_), sign, true);
    line_ += count_lines(std::string_view(s_).substr(open, p - open));
    pos_ = p;
    if (strip_after) after_block_end('-');
    // Find {%[-+]? endraw [-+]?%}
    for (size_t q = s_.find("{%", pos_); q != std::string::npos; q = s_.find("{%", q + 2)) {
      size_t r = q + 2;
      const char esign = r < s_.size() && (s_[r] == '-' || s_[r] == '+') ? s_[r] : 0;
      if (esign) ++r;
      while (r < s_.size() && ascii_space(s_[r])) ++r;
      if (!at(r, "endraw")) continue;
      r += 6;
      while (r < s_.size() && ascii_space(s_[r])) ++r;
      char end_sign = 0;
      if (at(r, "-%}") || at(r, "+%}")) {
        end_sign = s_[r];
        r += 3;
      } else if (at(r, "%}")) {
        r += 2;
      } else {
        continue;
      }
      emit_data(std::string_view(s_).substr(pos_, q - pos_), esign, true);
      line_ += count_lines(std::string_view(s_).substr(q, r - q));
      pos_ = r;
      after_block_end(end_sign);
      return true;
    }
    error("missing end of raw directive ({% endraw %})");
  }

  void root() {
    size_t open = std::string::npos;
    for (size_t p = s_.find('{', pos_); p != std::string::npos; p = s_.find('{', p + 1)) {
      if (p + 1 < s_.size() && (s_[p + 1] == '{' || s_[p + 1] == '%' || s_[p + 1] == '#')) {
        open = p;
        break;
      }
    }
    if (open == std::string::npos) {
      emit_data(std::string_view(s_).substr(pos_), 0, false);
      pos_ = s_.size();
      return;
    }
    const char kind = s_[open + 1];
    if (kind == '%' && try_raw(open)) return;
    const char sign = open + 2 < s_.size() && (s_[open + 2] == '-' || s_[open + 2] == '+') ? s_[open + 2] : 0;
    emit_data(std::string_view(s_).substr(pos_, open - pos_), sign, kind != '{');
    pos_ = open + 2 + (sign ? 1 : 0);
    if (kind == '#') return comment();
    out_.push_back({kind == '{' ? Tok::VarBegin : Tok::BlockBegin, line_, ""});
    inside_tag(kind == '{');
  }

  void comment() {
    const size_t end = s_.find("#}", pos_);
    if (end == std::string::npos) error("missing end of comment tag");
    char sign = 0;
    if (end > pos_ && (s_[end - 1] == '-' || s_[end - 1] == '+')) sign = s_[end - 1];
    line_ += count_lines(std::string_view(s_).substr(pos_, end + 2 - pos_));
    pos_ = end + 2;
    after_block_end(sign);
  }

  void inside_tag(bool variable) {
    std::vector<char> balance;
    const int start_line = line_;
    for (;;) {
      if (pos_ >= s_.size())
        throw Error(start_line, variable ? "unexpected end of template: missing '}}'" : "unexpected end of template: missing '%}'");
      const char c = s_[pos_];
      if (balance.empty()) {
        if (variable && (at(pos_, "-}}") || at(pos_, "}}"))) {
          const bool strip = c == '-';
          pos_ += strip ? 3 : 2;
          out_.push_back({Tok::VarEnd, line_, ""});
          if (strip) {
            after_block_end('-');
          } else {
            line_starting_ = false;
          }
          return;
        }
        if (!variable && (at(pos_, "-%}") || at(pos_, "+%}") || at(pos_, "%}"))) {
          const char sign = c == '%' ? 0 : c;
          pos_ += sign ? 3 : 2;
          out_.push_back({Tok::BlockEnd, line_, ""});
          after_block_end(sign);
          return;
        }
      }
      if (ascii_space(c)) {
        line_ += c == '\n';
        ++pos_;
        continue;
      }
      if (std::isdigit(static_cast<unsigned char>(c))) {
        number();
        continue;
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = pos_;
        while (e < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[e])) || s_[e] == '_')) ++e;
        out_.push_back({Tok::Name, line_, s_.substr(pos_, e - pos_)});
        pos_ = e;
        continue;
      }
      if (c == '\'' || c == '"') {
        string_literal(c);
        continue;
      }
      static const char* const kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]",
                                         "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"};
      bool matched = false;
      for (const char* op : kOps) {
        if (!at(pos_, op)) continue;
        const std::string o(op);
        if (o == "(" || o == "[" || o == "{") balance.push_back(o == "(" ? ')' : o == "[" ? ']' : '}');
        if (o == ")" || o == "]" || o == "}") {
          if (balance.empty()) error("unexpected '" + o + "'");
          if (balance.back() != o[0]) error("unexpected '" + o + "', expected '" + std::string(1, balance.back()) + "'");
          balance.pop_back();
        }
        out_.push_back({Tok::Op, line_, o});
        pos_ += o.size();
        matched = true;
        break;
      }
      if (!matched) error(std::string("unexpected character '") + c + "' inside a tag");
    }
  }

  void number() {
    const size_t start = pos_;
    auto digits = [&](size_t p) {
      const size_t b = p;
      while (p < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[p])) ||
                               (s_[p] == '_' && p > b && p + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[p + 1])))))
        ++p;
      return p;
    };
    size_t p = digits(pos_);
    bool is_float = false;
    const bool after_dot = start > 0 && s_[start - 1] == '.';  // foo.0.1: item 0, then item 1
    if (!after_dot && p + 1 < s_.size() && s_[p] == '.' && std::isdigit(static_cast<unsigned char>(s_[p + 1]))) {
      p = digits(p + 1);
      is_float = true;
    }
    if (!after_dot && p < s_.size() && (s_[p] == 'e' || s_[p] == 'E')) {
      size_t q = p + 1;
      if (q < s_.size() && (s_[q] == '+' || s_[q] == '-')) ++q;
      if (q < s_.size() && std::isdigit(static_cast<unsigned char>(s_[q]))) {
        p = digits(q);
        is_float = true;
      }
    }
    std::string t;
    for (size_t i = start; i < p; ++i)
      if (s_[i] != '_') t += s_[i];
    Token tok{is_float ? Tok::Float : Tok::Int, line_, s_.substr(start, p - start)};
    if (is_float) {
      tok.float_value = std::strtod(t.c_str(), nullptr);
    } else {
      errno = 0;
      tok.int_value = std::strtoll(t.c_str(), nullptr, 10);
      if (errno == ERANGE) error("integer literal " + t + " is too large");
    }
    out_.push_back(std::move(tok));
    pos_ = p;
  }

  void string_literal(char quote) {
    std::string v;
    size_t p = pos_ + 1;
    const int start_line = line_;
    for (;;) {
      if (p >= s_.size()) throw Error(start_line, "unterminated string literal");
      const char c = s_[p];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\') {
        v += c;
        ++p;
        continue;
      }
      if (p + 1 >= s_.size()) throw Error(start_line, "unterminated string literal");
      const char e = s_[p + 1];
      p += 2;
      auto hex = [&](int n) {
        char32_t cp = 0;
        for (int i = 0; i < n; ++i, ++p) {
          if (p >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[p])))
            error(std::string("truncated \\") + e + " escape in a string literal");
          cp = cp * 16 + static_cast<char32_t>(std::isdigit(static_cast<unsigned char>(s_[p])) ? s_[p] - '0' : (std::tolower(s_[p]) - 'a' + 10));
        }
        if (cp > 0x10FFFF) error("illegal Unicode character in a string literal");
        text::append(v, cp);
      };
      switch (e) {
        case '\n': ++line_; break;  // line continuation
        case '\\': v += '\\'; break;
        case '\'': v += '\''; break;
        case '"': v += '"'; break;
        case 'a': v += '\a'; break;
        case 'b': v += '\b'; break;
        case 'f': v += '\f'; break;
        case 'n': v += '\n'; break;
        case 'r': v += '\r'; break;
        case 't': v += '\t'; break;
        case 'v': v += '\v'; break;
        case 'x': hex(2); break;
        case 'u': hex(4); break;
        case 'U': hex(8); break;
        case 'N': error("\\N{...} escapes are not supported in string literals");
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int i = 0; i < 2 && p < s_.size() && s_[p] >= '0' && s_[p] <= '7'; ++i, ++p) cp = cp * 8 + static_cast<char32_t>(s_[p] - '0');
            text::append(v, cp);
          } else {
            v += '\\';  // Python keeps unknown escapes as they are
            v += e;
          }
      }
    }
    out_.push_back({Tok::String, start_line, std::move(v)});
    pos_ = p + 1;
  }
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(normalize(source)).run(); }

const char* describe(Tok t) {
  switch (t) {
    case Tok::Data: return "template data";
    case Tok::VarBegin: return "'{{'";
    case Tok::VarEnd: return "end of print statement";
    case Tok::BlockBegin: return "'{%'";
    case Tok::BlockEnd: return "end of statement block";
    case Tok::Name: return "name";
    case Tok::String: return "string";
    case Tok::Int: return "integer";
    case Tok::Float: return "float";
    case Tok::Op: return "operator";
    case Tok::Eof: return "end of template";
  }
  return "token";
}

}  // namespace moe::jinja
