#include "serve/grammar/gbnf.h"

#include <fmt/format.h>

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace moe::grammar {
namespace {

constexpr size_t npos = std::string_view::npos;
// Sum of the counts in {m,n} over the grammar: Builder unrolls each into about that many
// elements or rules, so the sum bounds what one grammar text can make it allocate.
constexpr long kMaxUnrolled = 1'000'000;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool is_surrogate(char32_t c) { return c >= 0xD800 && c <= 0xDFFF; }

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Grammar run(std::string_view root) {
    if (s_.starts_with("\xEF\xBB\xBF")) pos_ = 3;  // a UTF-8 byte order mark from some editors
    skip_space(true);
    while (!eof()) {
      parse_rule();
      skip_space(true);
    }
    auto it = rules_.find(std::string(root));
    if (it == rules_.end())
      throw GrammarError(fmt::format("gbnf: no rule named '{}' to start from; define it ('{} ::= ...')", root, root));
    // The earliest use of an undefined rule, so the error points at the first mistake.
    const Info* missing = nullptr;
    std::string missing_name;
    for (const auto& [name, info] : rules_)
      if (info.defined_at == npos && (!missing || info.first_use < missing->first_use)) {
        missing = &info;
        missing_name = name;
      }
    if (missing) fail(missing->first_use, fmt::format("rule '{}' is used but never defined", missing_name));
    return b_.build(it->second.id);  // GrammarError from Builder (left recursion, size) passes through
  }

 private:
  struct Info {
    RuleId id = 0;
    size_t first_use = npos;   // where it is first referenced
    size_t defined_at = npos;  // where its definition starts
  };

  bool eof() const { return pos_ >= s_.size(); }
  bool at(char c) const { return pos_ < s_.size() && s_[pos_] == c; }

  // Line and column (1-based; the column counts code points) of byte offset `p`.
  std::pair<size_t, size_t> line_col(size_t p) const {
    size_t line = 1, start = 0;
    for (size_t i = 0; i < p && i < s_.size(); ++i)
      if (s_[i] == '\n') ++line, start = i + 1;
    size_t col = 1;
    for (size_t i = start; i < p && i < s_.size(); ++i)
      if ((uint8_t(s_[i]) & 0xC0) != 0x80) ++col;
    return {line, col};
  }
  std::string where(size_t p) const {
    auto [l, c] = line_col(p);
    return fmt::format("line {}, column {}", l, c);
  }
  [[noreturn]] void fail(size_t p, std::string_view msg) const {
    throw GrammarError(fmt::format("gbnf: {}: {}", where(p), msg));
  }
  // What stands at `p`, for "expected X, found Y".
  std::string found(size_t p) const {
    if (p >= s_.size()) return "the end of the input";
    const uint8_t c = uint8_t(s_[p]);
    if (c == '\n') return "the end of the line";
    if (c >= 0x20 && c < 0x7F) return fmt::format("'{}'", char(c));
    if (c < 0x80) return fmt::format("the control character \\x{:02X}", c);
    return fmt::format("the byte \\x{:02X}", c);
  }

  // Spaces, tabs, carriage returns and comments; newlines too when `newlines` (inside
  // parentheses and between rules a newline is just space; elsewhere it ends the rule).
  void skip_space(bool newlines) {
    while (!eof()) {
      const char c = s_[pos_];
      if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) {
        ++pos_;
      } else if (c == '#') {
        while (!eof() && s_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  Info& lookup(std::string_view name, size_t use_at) {
    auto [it, fresh] = rules_.try_emplace(std::string(name));
    if (fresh) it->second.id = b_.declare(name);
    if (use_at != npos && it->second.first_use == npos) it->second.first_use = use_at;
    return it->second;
  }

  std::string_view parse_name() {
    const size_t start = pos_;
    while (!eof() && is_name_char(s_[pos_])) ++pos_;
    return s_.substr(start, pos_ - start);
  }

  // True (and the position left after `::=`) when a rule definition `name ::=` starts at pos_.
  bool rule_start_ahead() {
    const size_t save = pos_;
    parse_name();
    skip_space(false);
    const bool yes = s_.substr(pos_).starts_with("::=");
    pos_ = save;
    return yes;
  }

  void parse_rule() {
    const size_t start = pos_;
    if (!is_name_char(s_[pos_])) fail(pos_, fmt::format("expected a rule name, found {}", found(pos_)));
    const std::string name(parse_name());
    skip_space(false);
    if (!s_.substr(pos_).starts_with("::="))
      fail(pos_, fmt::format("expected '::=' after the rule name '{}', found {}", name, found(pos_)));
    pos_ += 3;
    skip_space(true);  // the body may start on the next line, as in llama.cpp
    Expr body = parse_alternates(false);
    skip_space(false);
    if (!eof() && s_[pos_] != '\n') {
      if (at(')')) fail(pos_, "unbalanced ')': no '(' is open");
      fail(pos_, fmt::format("expected a symbol, '|' or the end of the line, found {}", found(pos_)));
    }
    Info& info = lookup(name, npos);
    if (info.defined_at != npos)
      fail(start, fmt::format("rule '{}' is defined twice (first at {})", name, where(info.defined_at)));
    info.defined_at = start;
    b_.define(info.id, std::move(body));
  }

  Expr parse_alternates(bool nested) {
    std::vector<Expr> alts;
    alts.push_back(parse_sequence(nested));
    for (;;) {
      skip_space(nested);
      if (at('|')) {
        ++pos_;
        skip_space(true);  // a newline after '|' continues the rule
      } else if (!nested && at('\n')) {
        // A following line that starts with '|' continues the rule too.
        const size_t save = pos_;
        skip_space(true);
        if (!at('|')) {
          pos_ = save;
          break;
        }
        ++pos_;
        skip_space(true);
      } else {
        break;
      }
      alts.push_back(parse_sequence(nested));
    }
    return alt(std::move(alts));
  }

  Expr parse_sequence(bool nested) {
    std::vector<Expr> items;
    for (;;) {
      skip_space(nested);
      if (eof()) break;
      const size_t item_at = pos_;
      const char c = s_[pos_];
      Expr e;
      if (c == '"') {
        e = parse_literal();
      } else if (c == '[') {
        e = parse_class();
      } else if (c == '.') {
        ++pos_;
        e = any_char();
      } else if (c == '(') {
        if (depth_ >= kGbnfMaxNesting)
          fail(pos_, fmt::format("groups and quantifiers nest deeper than {}", kGbnfMaxNesting));
        ++depth_;
        ++pos_;
        e = parse_alternates(true);
        skip_space(true);
        if (!at(')'))
          fail(pos_, fmt::format("expected ')' to close the '(' at {}, found {}", where(item_at), found(pos_)));
        ++pos_;
        --depth_;
      } else if (is_name_char(c)) {
        const bool starts_rule = rule_start_ahead();
        const std::string_view name = parse_name();
        if (starts_rule)
          fail(item_at, fmt::format("expected an expression, found the start of rule '{}' (is the rule before "
                                    "it empty, or missing a ')'? write \"\" for the empty string)",
                                    name));
        e = ref(lookup(name, item_at).id);
      } else if (c == '*' || c == '+' || c == '?' || c == '{') {
        fail(pos_, fmt::format("'{}' has nothing to repeat: it must follow a symbol or a group", c));
      } else {
        break;
      }
      parse_quantifiers(e, nested);
      items.push_back(std::move(e));
    }
    return seq(std::move(items));
  }

  void parse_quantifiers(Expr& e, bool nested) {
    int stacked = 0;
    for (;;) {
      const size_t save = pos_;
      skip_space(nested);
      if (eof()) return;
      const size_t q_at = pos_;
      const char c = s_[pos_];
      int min = 0, max = -1;
      if (c == '*') {
        ++pos_;
      } else if (c == '+') {
        ++pos_;
        min = 1;
      } else if (c == '?') {
        ++pos_;
        max = 1;
      } else if (c == '{') {
        ++pos_;
        skip_space(false);
        min = max = parse_count();
        skip_space(false);
        if (at(',')) {
          ++pos_;
          skip_space(false);
          max = at('}') ? -1 : parse_count();
          skip_space(false);
        }
        if (!at('}')) fail(pos_, fmt::format("expected ',' or '}}' in the repetition, found {}", found(pos_)));
        ++pos_;
        if (max >= 0 && max < min) fail(q_at, fmt::format("repetition {{{},{}}}: the minimum exceeds the maximum", min, max));
        unrolled_ += max < 0 ? min : max;
        if (unrolled_ > kMaxUnrolled)
          fail(q_at, fmt::format("the repetition counts add up to more than {}: the grammar would unroll too large",
                                 kMaxUnrolled));
      } else {
        pos_ = save;
        return;
      }
      if (depth_ + ++stacked > kGbnfMaxNesting)
        fail(q_at, fmt::format("groups and quantifiers nest deeper than {}", kGbnfMaxNesting));
      e = repeat(std::move(e), min, max);
    }
  }

  int parse_count() {
    const size_t start = pos_;
    if (eof() || s_[pos_] < '0' || s_[pos_] > '9')
      fail(pos_, fmt::format("expected a number in the repetition, found {}", found(pos_)));
    long n = 0;
    while (!eof() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      n = n * 10 + (s_[pos_++] - '0');
      if (n > kGbnfMaxRepeat)
        fail(start, fmt::format("a repetition count over the limit of {}", kGbnfMaxRepeat));
    }
    return int(n);
  }

  Expr parse_literal() {
    const size_t open = pos_++;
    std::string bytes;
    for (;;) {
      if (eof() || s_[pos_] == '\n')
        fail(open, "unterminated string literal: expected a closing '\"' on the same line (write \\n for a newline)");
      if (s_[pos_] == '"') break;
      const size_t char_at = pos_;
      const char32_t c = parse_char();
      if (is_surrogate(c)) fail(char_at, fmt::format("U+{:04X} is a UTF-16 surrogate, not a character", uint32_t(c)));
      append_utf8(bytes, c);
    }
    ++pos_;
    return bytes.empty() ? empty() : lit(bytes);
  }

  Expr parse_class() {
    const size_t open = pos_++;
    const bool negated = at('^');
    if (negated) ++pos_;
    std::vector<CodeRange> ranges;
    auto endpoint = [&] {
      if (eof() || s_[pos_] == '\n') fail(open, "unterminated character class: expected ']' on the same line");
      const size_t char_at = pos_;
      const char32_t c = parse_char();
      if (is_surrogate(c)) fail(char_at, fmt::format("U+{:04X} is a UTF-16 surrogate, not a character", uint32_t(c)));
      return c;
    };
    for (;;) {
      if (at(']')) break;
      const size_t lo_at = pos_;
      const char32_t lo = endpoint();
      char32_t hi = lo;
      // '-' is a range unless it is last (then it is itself, like a '-' first in the class).
      if (at('-') && pos_ + 1 < s_.size() && s_[pos_ + 1] != ']') {
        ++pos_;
        hi = endpoint();
        if (hi < lo) fail(lo_at, fmt::format("the range U+{:04X}-U+{:04X} is reversed", uint32_t(lo), uint32_t(hi)));
      }
      ranges.push_back({lo, hi});
    }
    ++pos_;
    if (ranges.empty() && !negated) fail(open, "the character class '[]' is empty and matches nothing");
    return chars(std::move(ranges), negated);
  }

  // One code point of a literal or class: an escape or a UTF-8 encoded character.
  char32_t parse_char() {
    const size_t start = pos_;
    const uint8_t c = uint8_t(s_[pos_]);
    if (c != '\\') return c < 0x80 ? (++pos_, c) : decode_utf8();
    if (++pos_ >= s_.size()) fail(start, "unfinished escape at the end of the input");
    const char e = s_[pos_++];
    switch (e) {
      case 'n': return '\n';
      case 't': return '\t';
      case 'r': return '\r';
      case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': return char32_t(e);
      case 'x': return parse_hex(start, 2);
      case 'u': return parse_hex(start, 4);
      case 'U': return parse_hex(start, 8);
      default: break;
    }
    --pos_;
    fail(start, fmt::format("unknown escape '\\' followed by {} (known: \\n \\t \\r \\\\ \\\" \\' \\[ \\] \\- \\^ "
                            "\\xHH \\uHHHH \\UHHHHHHHH)",
                            found(pos_)));
  }

  char32_t parse_hex(size_t start, int digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      const char h = eof() ? '\0' : s_[pos_];
      int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
      if (d < 0)
        fail(start, fmt::format("escape '\\{}' needs {} hex digits, found {}", s_[start + 1], digits, found(pos_)));
      v = v * 16 + uint32_t(d);
      ++pos_;
    }
    if (v > 0x10FFFF) fail(start, fmt::format("U+{:X} is beyond U+10FFFF, the last Unicode code point", v));
    return char32_t(v);
  }

  char32_t decode_utf8() {
    const size_t start = pos_;
    const uint8_t c = uint8_t(s_[pos_]);
    int n = 0;
    char32_t v = 0;
    if (c >= 0xC2 && c <= 0xDF) n = 1, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 2, v = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 3, v = c & 0x07;
    else fail(start, fmt::format("invalid UTF-8 (byte \\x{:02X})", c));
    ++pos_;
    for (int i = 0; i < n; ++i, ++pos_) {
      if (eof() || (uint8_t(s_[pos_]) & 0xC0) != 0x80) fail(start, "invalid UTF-8 (a truncated sequence)");
      v = (v << 6) | (uint8_t(s_[pos_]) & 0x3F);
    }
    static constexpr char32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (v < kMin[n] || v > 0x10FFFF || is_surrogate(v))
      fail(start, "invalid UTF-8 (an overlong form, a surrogate or beyond U+10FFFF)");
    return v;
  }

  std::string_view s_;
  size_t pos_ = 0;
  int depth_ = 0;  // open parentheses
  long unrolled_ = 0;
  Builder b_;
  std::unordered_map<std::string, Info> rules_;
};

}  // namespace

Grammar gbnf_grammar(std::string_view text, std::string_view root) {
  if (text.size() > kGbnfMaxBytes)
    throw GrammarError(fmt::format("gbnf: the grammar is {} bytes; the limit is {} (1 MiB)", text.size(), kGbnfMaxBytes));
  return Parser(text).run(root);
}

}  // namespace moe::grammar
