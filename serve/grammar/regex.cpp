#include "serve/grammar/regex.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace moe::grammar {
namespace {

constexpr size_t kMaxPatternBytes = size_t(1) << 16;  // patterns come from requests
constexpr int kMaxDepth = 100;                        // ( ) nesting
constexpr int kMaxCount = 10000;                      // n and m in {n,m}
constexpr char32_t kMaxCp = 0x10FFFF;

using Ranges = std::vector<CodeRange>;

Ranges merged(Ranges r) {
  std::sort(r.begin(), r.end(), [](const CodeRange& a, const CodeRange& b) { return a.lo < b.lo; });
  Ranges out;
  for (const auto& x : r) {
    if (!out.empty() && x.lo <= out.back().hi + 1)
      out.back().hi = std::max(out.back().hi, x.hi);
    else
      out.push_back(x);
  }
  return out;
}

Ranges complement(const Ranges& in) {
  Ranges r = merged(in), out;
  char32_t next = 0;
  for (const auto& x : r) {
    if (x.lo > next) out.push_back({next, x.lo - 1});
    next = x.hi + 1;
  }
  if (next <= kMaxCp) out.push_back({next, kMaxCp});
  return out;
}

Ranges unite(Ranges a, const Ranges& b) {
  a.insert(a.end(), b.begin(), b.end());
  return merged(std::move(a));
}

Ranges subtract(const Ranges& a, const Ranges& b) { return complement(unite(complement(a), b)); }

bool contains(const Ranges& r, char32_t c) {
  return std::any_of(r.begin(), r.end(), [c](const CodeRange& x) { return x.lo <= c && c <= x.hi; });
}

// Code points a character class can really produce (grammar.cpp drops surrogates too).
bool matches_nothing(const Ranges& positive) { return subtract(positive, {{0xD800, 0xDFFF}}).empty(); }

// \d \w \s differ between engines: ECMAScript (what JSON Schema names) keeps \d and \w ASCII,
// Python's re (jsonschema) makes them Unicode-wide, and their \s sets differ a little. So each
// class escape has what it surely matches (`must`: the intersection) and what it might match
// (`may`: the union); a class produces its `must`, a negation the complement of the `may`, and
// the text then matches under either engine.
const Ranges kDigit{{'0', '9'}};
// Unicode decimal digits (category Nd, up to Unicode 16): Python's \d.
const Ranges kDigitMay{
    {'0', '9'},         {0x660, 0x669},     {0x6F0, 0x6F9},     {0x7C0, 0x7C9},     {0x966, 0x96F},     {0x9E6, 0x9EF},
    {0xA66, 0xA6F},     {0xAE6, 0xAEF},     {0xB66, 0xB6F},     {0xBE6, 0xBEF},     {0xC66, 0xC6F},     {0xCE6, 0xCEF},
    {0xD66, 0xD6F},     {0xDE6, 0xDEF},     {0xE50, 0xE59},     {0xED0, 0xED9},     {0xF20, 0xF29},     {0x1040, 0x1049},
    {0x1090, 0x1099},   {0x17E0, 0x17E9},   {0x1810, 0x1819},   {0x1946, 0x194F},   {0x19D0, 0x19D9},   {0x1A80, 0x1A89},
    {0x1A90, 0x1A99},   {0x1B50, 0x1B59},   {0x1BB0, 0x1BB9},   {0x1C40, 0x1C49},   {0x1C50, 0x1C59},   {0xA620, 0xA629},
    {0xA8D0, 0xA8D9},   {0xA900, 0xA909},   {0xA9D0, 0xA9D9},   {0xA9F0, 0xA9F9},   {0xAA50, 0xAA59},   {0xABF0, 0xABF9},
    {0xFF10, 0xFF19},   {0x104A0, 0x104A9}, {0x10D30, 0x10D39}, {0x10D40, 0x10D49}, {0x11066, 0x1106F}, {0x110F0, 0x110F9},
    {0x11136, 0x1113F}, {0x111D0, 0x111D9}, {0x112F0, 0x112F9}, {0x11450, 0x11459}, {0x114D0, 0x114D9}, {0x11650, 0x11659},
    {0x116C0, 0x116C9}, {0x116D0, 0x116E3}, {0x11730, 0x11739}, {0x118E0, 0x118E9}, {0x11950, 0x11959}, {0x11BF0, 0x11BF9},
    {0x11C50, 0x11C59}, {0x11D50, 0x11D59}, {0x11DA0, 0x11DA9}, {0x11F50, 0x11F59}, {0x16130, 0x16139}, {0x16A60, 0x16A69},
    {0x16AC0, 0x16AC9}, {0x16B50, 0x16B59}, {0x16D70, 0x16D79}, {0x1CCF0, 0x1CCF9}, {0x1D7CE, 0x1D7FF}, {0x1E140, 0x1E149},
    {0x1E2F0, 0x1E2F9}, {0x1E4F0, 0x1E4F9}, {0x1E5F1, 0x1E5FA}, {0x1E950, 0x1E959}, {0x1FBF0, 0x1FBF9}};
const Ranges kWord{{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
// Python's \w takes most of Unicode (letters, digits, marks): all of non-ASCII, to be safe.
const Ranges kWordMay{{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}, {0x80, kMaxCp}};
// ECMAScript's WhiteSpace and LineTerminator that Python's \s also has (not U+FEFF).
const Ranges kSpace{{0x09, 0x0D},     {0x20, 0x20},     {0xA0, 0xA0},     {0x1680, 0x1680}, {0x2000, 0x200A},
                    {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}};
// Either's: plus U+FEFF (ECMAScript), 0x1C-0x1F and U+0085 (Python).
const Ranges kSpaceMay{{0x09, 0x0D},     {0x1C, 0x20},     {0x85, 0x85},     {0xA0, 0xA0},     {0x1680, 0x1680},
                       {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
                       {0xFEFF, 0xFEFF}};
// What `.` surely matches: ECMAScript stops at all line terminators, Python only at \n.
const Ranges kDotMust = complement({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}});
// What a JSON string cannot hold unescaped.
const Ranges kJsonUnsafe{{0x00, 0x1F}, {'"', '"'}, {'\\', '\\'}};

bool nullable(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::literal: return e.text.empty();
    case Expr::Kind::bytes:
    case Expr::Kind::chars:
    case Expr::Kind::ref: return false;
    case Expr::Kind::seq: return std::all_of(e.items.begin(), e.items.end(), nullable);
    case Expr::Kind::alt: return std::any_of(e.items.begin(), e.items.end(), nullable);
    case Expr::Kind::repeat: return e.min == 0 || e.max == 0 || nullable(e.items[0]);
  }
  return false;
}

// A non-nullable B with B* == e* (nullopt: e matches only ""). Builder rejects the star of a
// nullable expression as left recursion, and regexes like (a*)* or (a?b?)+ are common.
std::optional<Expr> star_body(const Expr& e) {
  if (!nullable(e)) return e;
  switch (e.kind) {
    case Expr::Kind::seq:  // all parts nullable: (a b)* == (a' | b')*
    case Expr::Kind::alt: {
      std::vector<Expr> parts;
      for (const auto& x : e.items)
        if (auto b = star_body(x)) parts.push_back(std::move(*b));
      if (parts.empty()) return std::nullopt;
      return alt(std::move(parts));
    }
    case Expr::Kind::repeat:  // x{0,m} or nullable x: (x{n,m})* == x*
      if (e.max == 0) return std::nullopt;
      return star_body(e.items[0]);
    default: return std::nullopt;  // the empty literal
  }
}

std::string json_escape(char32_t c) {
  switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    case '\b': return "\\b";
    case '\f': return "\\f";
    default: return fmt::format("\\u{:04x}", uint32_t(c));
  }
}

bool json_named_escape(char32_t c) { return c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f'; }

// A (positive) set of code points as an expression; in JSON mode the unsafe members appear in
// their escaped form.
Expr set_expr(const Ranges& positive, bool json) {
  if (!json) return chars(positive);
  std::vector<Expr> alts;
  const Ranges safe = subtract(positive, kJsonUnsafe);
  if (!matches_nothing(safe)) alts.push_back(chars(safe));
  // \u00XX forms grouped by the high hex digit: one literal prefix and a class of low digits.
  ByteSet low[2];
  for (char32_t c = 0; c < 0x80; ++c) {
    if (!(c < 0x20 || c == '"' || c == '\\') || !contains(positive, c)) continue;
    if (json_named_escape(c)) {
      alts.push_back(lit(json_escape(c)));
    } else {
      const char d = "0123456789abcdef"[c & 15];
      low[c >> 4].set(uint8_t(d));
    }
  }
  for (int h = 0; h < 2; ++h)
    if (!low[h].empty()) alts.push_back(seq({lit(h ? "\\u001" : "\\u000"), byte_set(low[h])}));
  return alt(std::move(alts));
}

Expr char_expr(char32_t c, bool json) {
  std::string s;
  if (json && (c < 0x20 || c == '"' || c == '\\'))
    s = json_escape(c);
  else
    append_utf8(s, c);
  return lit(s);
}

// One class item: a code point, or a set (\d, \W, ...) as what it surely / possibly matches.
struct ClassAtom {
  bool is_set = false;
  char32_t cp = 0;
  Ranges must, may;
};

class Parser {
 public:
  Parser(std::string_view pattern, const RegexOptions& o) : s_(pattern), o_(o) {}

  Expr run() {
    if (s_.size() > kMaxPatternBytes)
      throw GrammarError(fmt::format("regex: the pattern is {} bytes; the limit is {}", s_.size(), kMaxPatternBytes));
    std::vector<Expr> branches;
    do {
      // Anchors count per top-level alternative: `^a|b$` is "starts with a or ends with b".
      const bool caret = eat('^');
      bool dollar = false;
      Expr body = parse_seq(0, &dollar);
      std::vector<Expr> parts;
      if (!caret && !o_.anchored_start) parts.push_back(pad());
      parts.push_back(std::move(body));
      if (!dollar && !o_.anchored_end) parts.push_back(pad());
      branches.push_back(seq(std::move(parts)));
    } while (eat('|'));
    if (!eof()) fail(pos_, "unmatched ')'");
    return alt(std::move(branches));
  }

 private:
  bool eof() const { return pos_ >= s_.size(); }
  bool at(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
  bool eat(char c) {
    if (!at(c)) return false;
    ++pos_;
    return true;
  }
  [[noreturn]] void fail(size_t p, std::string_view msg) const {
    throw GrammarError(fmt::format("regex: {} (at offset {} of the pattern)", msg, p));
  }

  Expr pad() const {
    return o_.json_string ? star(json_string_char()) : star(any_char());
  }

  // Alternatives inside a group.
  Expr parse_alt(int depth) {
    std::vector<Expr> branches;
    do branches.push_back(parse_seq(depth, nullptr));
    while (eat('|'));
    return alt(std::move(branches));
  }

  // A sequence up to `|`, `)` or the end. `dollar` non-null: top level, where a final `$` is
  // an anchor.
  Expr parse_seq(int depth, bool* dollar) {
    std::vector<Expr> items;
    while (!eof() && !at('|') && !at(')')) {
      if (at('$')) {
        if (dollar && (pos_ + 1 == s_.size() || s_[pos_ + 1] == '|')) {
          ++pos_;
          *dollar = true;
          break;
        }
        fail(pos_, "the anchor '$' is only supported at the end of the pattern or of a top-level alternative");
      }
      if (at('^'))
        fail(pos_, "the anchor '^' is only supported at the start of the pattern or of a top-level alternative");
      Expr a = parse_atom(depth);
      items.push_back(parse_quantifier(std::move(a)));
    }
    return seq(std::move(items));
  }

  Expr parse_atom(int depth) {
    const size_t start = pos_;
    const char c = s_[pos_];
    switch (c) {
      case '(': return parse_group(depth);
      case '[': return parse_class();
      case '.':
        ++pos_;
        return set_expr(kDotMust, o_.json_string);
      case '\\': {
        ++pos_;
        ClassAtom a = parse_escape(false, start);
        return a.is_set ? set_expr(a.must, o_.json_string) : char_expr(a.cp, o_.json_string);
      }
      case '*':
      case '+':
      case '?': fail(pos_, fmt::format("nothing to repeat before the quantifier '{}'", c));
      case '{':
        if (braces_ahead()) fail(pos_, "nothing to repeat before the quantifier '{'");
        ++pos_;  // not a quantifier: a literal brace, as in ECMAScript
        return char_expr('{', o_.json_string);
      default: return char_expr(next_cp(), o_.json_string);
    }
  }

  Expr parse_group(int depth) {
    const size_t start = pos_++;
    if (depth + 1 > kMaxDepth) fail(start, fmt::format("groups nest deeper than {}", kMaxDepth));
    if (eat('?')) {
      const std::string_view rest = s_.substr(pos_);
      if (eat(':')) {
      } else if (rest.starts_with("=") || rest.starts_with("!")) {
        fail(start, "lookahead '(?=' / '(?!' is not supported");
      } else if (rest.starts_with("<=") || rest.starts_with("<!")) {
        fail(start, "lookbehind '(?<=' / '(?<!' is not supported");
      } else if (rest.starts_with("<") || rest.starts_with("P<") || rest.starts_with("'")) {
        fail(start, "named groups '(?<name>...)' are not supported; use '(...)' or '(?:...)'");
      } else if (rest.starts_with("P=")) {
        fail(start, "named backreferences '(?P=name)' are not supported");
      } else if (rest.starts_with(">")) {
        fail(start, "atomic groups '(?>...)' are not supported");
      } else if (rest.starts_with("#")) {
        fail(start, "comment groups '(?#...)' are not supported");
      } else {
        fail(start, "inline flags '(?flags)' are not supported");
      }
    }
    Expr inner = parse_alt(depth + 1);
    if (!eat(')')) fail(start, "unterminated group: '(' without ')'");
    return inner;
  }

  // `{n}`, `{n,}`, `{n,m}` or `{,m}` at pos_; when `take`, consumes it into lo/hi.
  bool braces_ahead(bool take = false, int* lo = nullptr, int* hi = nullptr) {
    size_t p = pos_ + 1;
    auto number = [&](long& v) {
      const size_t from = p;
      v = 0;
      while (p < s_.size() && s_[p] >= '0' && s_[p] <= '9') v = std::min<long>(v * 10 + (s_[p++] - '0'), 1L << 40);
      return p > from;
    };
    long a = 0, b = -1;
    const bool has_a = number(a);
    bool comma = false, has_b = false;
    if (p < s_.size() && s_[p] == ',') {
      comma = true;
      ++p;
      has_b = number(b);
    }
    if (p >= s_.size() || s_[p] != '}' || (!has_a && !has_b)) return false;
    if (!take) return true;
    if (!comma) b = a;
    if (!has_b && comma) b = -1;
    if (a > kMaxCount || b > kMaxCount)
      fail(pos_, fmt::format("repetition counts above {} are not supported", kMaxCount));
    if (b >= 0 && b < a) fail(pos_, fmt::format("bad repetition {{{},{}}}: the maximum is below the minimum", a, b));
    *lo = int(a);
    *hi = int(b);
    pos_ = p + 1;
    return true;
  }

  Expr parse_quantifier(Expr a) {
    int lo = 0, hi = -1;
    const size_t q = pos_;
    if (eat('*')) {
      lo = 0, hi = -1;
    } else if (eat('+')) {
      lo = 1, hi = -1;
    } else if (eat('?')) {
      lo = 0, hi = 1;
    } else if (!(at('{') && braces_ahead(true, &lo, &hi))) {
      return a;
    }
    if (eat('?')) {
      // lazy: the same set of strings
    } else if (at('+')) {
      fail(pos_, "possessive quantifiers ('*+', '++', '?+', '{n}+') are not supported");
    }
    if (at('*') || at('+') || at('?') || (at('{') && braces_ahead()))
      fail(pos_, fmt::format("a quantifier cannot follow the quantifier at offset {}", q));
    if (hi == 0) return empty();
    if (nullable(a)) {
      // x{n,m} == x{0,m} when x matches ""; unbounded: x* with a non-nullable body.
      if (hi >= 0) return repeat(std::move(a), 0, hi);
      auto body = star_body(a);
      return body ? star(std::move(*body)) : empty();
    }
    return repeat(std::move(a), lo, hi);
  }

  Expr parse_class() {
    const size_t start = pos_++;
    const bool negated = eat('^');
    Ranges must, may;
    auto add = [&](const Ranges& m, const Ranges& y) {
      must = unite(std::move(must), m);
      may = unite(std::move(may), y);
    };
    if (eat(']')) {  // ECMAScript: [] matches nothing, [^] any character
      if (!negated) fail(start, "the empty class '[]' matches nothing");
      return set_expr({{0, kMaxCp}}, o_.json_string);
    }
    while (!eat(']')) {
      if (eof()) fail(start, "unterminated character class: '[' without ']'");
      ClassAtom a = class_atom();
      const bool range = at('-') && pos_ + 1 < s_.size() && s_[pos_ + 1] != ']';
      if (!range || a.is_set) {  // [\w-x]: the '-' is literal (it comes round as an atom)
        add(a.must, a.may);
        continue;
      }
      const size_t dash = pos_++;
      ClassAtom b = class_atom();
      if (b.is_set) {
        add(a.must, a.may);
        add({{'-', '-'}}, {{'-', '-'}});
        add(b.must, b.may);
        continue;
      }
      if (b.cp < a.cp) fail(dash, "character class range out of order");
      add({{a.cp, b.cp}}, {{a.cp, b.cp}});
    }
    const Ranges positive = negated ? complement(may) : must;
    if (matches_nothing(positive)) fail(start, "the character class matches nothing");
    // Plain mode keeps the negation for Builder (fewer ranges to write down).
    if (!o_.json_string) return negated ? chars(may, true) : chars(must);
    return set_expr(positive, true);
  }

  ClassAtom class_atom() {
    const size_t start = pos_;
    if (eat('\\')) return parse_escape(true, start);
    const char32_t c = next_cp();
    return {false, c, {{c, c}}, {{c, c}}};
  }

  // After a backslash at `start`.
  ClassAtom parse_escape(bool in_class, size_t start) {
    if (eof()) fail(start, "the pattern ends with a lone backslash");
    const char c = s_[pos_++];
    auto cp = [](char32_t v) { return ClassAtom{false, v, {{v, v}}, {{v, v}}}; };
    auto set = [](const Ranges& must, const Ranges& may) { return ClassAtom{true, 0, must, may}; };
    auto negated = [](const Ranges& must, const Ranges& may) { return ClassAtom{true, 0, complement(may), complement(must)}; };
    switch (c) {
      case 'd': return set(kDigit, kDigitMay);
      case 'D': return negated(kDigit, kDigitMay);
      case 'w': return set(kWord, kWordMay);
      case 'W': return negated(kWord, kWordMay);
      case 's': return set(kSpace, kSpaceMay);
      case 'S': return negated(kSpace, kSpaceMay);
      case 'n': return cp('\n');
      case 't': return cp('\t');
      case 'r': return cp('\r');
      case 'f': return cp('\f');
      case 'v': return cp('\v');
      case '0':
        if (at_digit()) fail(start, "octal escapes are not supported");
        return cp(0);
      case 'b':
        if (in_class) return cp('\b');
        fail(start, "the word boundary '\\b' is not supported");
      case 'B': fail(start, "the non-word boundary '\\B' is not supported");
      case 'x': {
        auto v = hex_digits(2);
        if (!v) fail(start, "'\\x' needs two hex digits");
        return cp(*v);
      }
      case 'u': return cp(parse_unicode_escape(start));
      case 'c':
        if (pos_ < s_.size() && ((s_[pos_] >= 'a' && s_[pos_] <= 'z') || (s_[pos_] >= 'A' && s_[pos_] <= 'Z')))
          return cp(char32_t(s_[pos_++]) & 31);
        fail(start, "'\\c' needs a letter");
      case 'k': fail(start, "named backreferences '\\k<name>' are not supported");
      case 'p':
      case 'P': fail(start, fmt::format("Unicode property escapes '\\{}{{...}}' are not supported", c));
      case 'A':
      case 'Z':
      case 'z':
      case 'G': fail(start, fmt::format("the anchor '\\{}' is not supported", c));
      default: break;
    }
    if (c >= '1' && c <= '9') fail(start, fmt::format("backreferences ('\\{}') are not supported", c));
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
      fail(start, fmt::format("unknown escape '\\{}'", c));
    --pos_;  // escaped punctuation or any other character: itself
    return cp(next_cp());
  }

  bool at_digit() const { return pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; }

  std::optional<char32_t> hex_digits(int n) {
    if (pos_ + n > s_.size()) return std::nullopt;
    char32_t v = 0;
    for (int i = 0; i < n; ++i) {
      const char h = s_[pos_ + i];
      int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
      if (d < 0) return std::nullopt;
      v = v * 16 + char32_t(d);
    }
    pos_ += n;
    return v;
  }

  // After `\u`: XXXX (a surrogate pair written as two escapes is combined) or {X...}.
  char32_t parse_unicode_escape(size_t start) {
    if (eat('{')) {
      char32_t v = 0;
      size_t n = 0;
      while (!eof() && !at('}')) {
        auto d = hex_digits(1);
        if (!d || ++n > 6) fail(start, "bad '\\u{...}' escape");
        v = v * 16 + *d;
      }
      if (!eat('}') || n == 0 || v > kMaxCp) fail(start, "bad '\\u{...}' escape");
      if (v >= 0xD800 && v <= 0xDFFF) fail(start, "a lone surrogate cannot be matched");
      return v;
    }
    auto v = hex_digits(4);
    if (!v) fail(start, "'\\u' needs four hex digits");
    if (*v >= 0xD800 && *v <= 0xDBFF && s_.substr(pos_).starts_with("\\u")) {
      const size_t save = pos_;
      pos_ += 2;
      auto low = hex_digits(4);
      if (low && *low >= 0xDC00 && *low <= 0xDFFF) return 0x10000 + ((*v - 0xD800) << 10) + (*low - 0xDC00);
      pos_ = save;
    }
    if (*v >= 0xD800 && *v <= 0xDFFF) fail(start, "a lone surrogate cannot be matched");
    return *v;
  }

  // One UTF-8 encoded code point of the pattern.
  char32_t next_cp() {
    const size_t start = pos_;
    const uint8_t b = uint8_t(s_[pos_++]);
    if (b < 0x80) return b;
    int n = b >= 0xF0 && b <= 0xF4 ? 3 : b >= 0xE0 ? 2 : b >= 0xC2 && b < 0xE0 ? 1 : -1;
    if (b >= 0xF5) n = -1;
    if (n < 0 || pos_ + size_t(n) > s_.size()) fail(start, "invalid UTF-8 in the pattern");
    char32_t v = b & (0x3F >> n);
    for (int i = 0; i < n; ++i) {
      const uint8_t c = uint8_t(s_[pos_++]);
      if ((c & 0xC0) != 0x80) fail(start, "invalid UTF-8 in the pattern");
      v = (v << 6) | (c & 0x3F);
    }
    static const char32_t min_for[] = {0, 0x80, 0x800, 0x10000};
    if (v < min_for[n] || v > kMaxCp || (v >= 0xD800 && v <= 0xDFFF)) fail(start, "invalid UTF-8 in the pattern");
    return v;
  }

  std::string_view s_;
  RegexOptions o_;
  size_t pos_ = 0;
};

}  // namespace

Expr json_string_char() {
  ByteSet esc, hex, lead, d, low3, hi_sur, lo_sur;
  for (char c : std::string_view("\"\\/bfnrt")) esc.set(uint8_t(c));
  hex.set_range('0', '9');
  hex.set_range('a', 'f');
  hex.set_range('A', 'F');
  lead.set_range('0', '9');  // a first hex digit other than d: never a surrogate
  lead.set_range('a', 'c');
  lead.set_range('A', 'C');
  lead.set_range('e', 'f');
  lead.set_range('E', 'F');
  d.set('d');
  d.set('D');
  low3.set_range('0', '7');
  for (char c : std::string_view("89abAB")) hi_sur.set(uint8_t(c));
  for (char c : std::string_view("cdefCDEF")) lo_sur.set(uint8_t(c));
  const Expr h = byte_set(hex);
  // One character: a surrogate pair written as two escapes is one code point (as JSON Schema
  // counts lengths); a lone surrogate escape is not text and is refused.
  const Expr u = alt({seq({byte_set(lead), h, h, h}), seq({byte_set(d), byte_set(low3), h, h}),
                      seq({byte_set(d), byte_set(hi_sur), h, h, lit("\\u"), byte_set(d), byte_set(lo_sur), h, h})});
  return alt({chars(kJsonUnsafe, true), seq({lit("\\"), alt({byte_set(esc), seq({lit("u"), u})})})});
}

Expr regex_expr(std::string_view pattern, const RegexOptions& options) { return Parser(pattern, options).run(); }

Grammar regex_grammar(std::string_view pattern) {
  Builder b;
  const RuleId root = b.rule("regex", regex_expr(pattern));
  return b.build(root);
}

}  // namespace moe::grammar
