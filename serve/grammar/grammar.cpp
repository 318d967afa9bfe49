#include "serve/grammar/grammar.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <utility>

namespace moe::grammar {

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(char(c));
  } else if (c < 0x800) {
    out.push_back(char(0xC0 | (c >> 6)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(char(0xE0 | (c >> 12)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (c >> 18)));
    out.push_back(char(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(char(0x80 | (c & 0x3F)));
  }
}

std::vector<std::vector<ByteSet>> marker_steps(std::string_view marker, int limit) {
  const size_t m = marker.size();
  std::vector<size_t> fail(m, 0);
  for (size_t i = 1, k = 0; i < m; ++i) {
    while (k && marker[i] != marker[k]) k = fail[k - 1];
    if (marker[i] == marker[k]) ++k;
    fail[i] = k;
  }
  std::vector<std::vector<ByteSet>> steps(m, std::vector<ByteSet>(m + 1));
  for (size_t k = 0; k < m; ++k)
    for (int b = 0; b < limit; ++b) {
      size_t j = k;
      while (j && uint8_t(marker[j]) != b) j = fail[j - 1];
      steps[k][uint8_t(marker[j]) == b ? j + 1 : 0].set(uint8_t(b));
    }
  return steps;
}

Expr lit(std::string_view bytes) {
  Expr e;
  e.kind = Expr::Kind::literal;
  e.text = std::string(bytes);
  return e;
}
Expr byte_set(const ByteSet& s) {
  Expr e;
  e.kind = Expr::Kind::bytes;
  e.byte_set = s;
  return e;
}
Expr chars(std::vector<CodeRange> ranges, bool negated) {
  Expr e;
  e.kind = Expr::Kind::chars;
  e.ranges = std::move(ranges);
  e.negated = negated;
  return e;
}
Expr any_char() { return chars({}, true); }
Expr seq(std::vector<Expr> items) {
  if (items.size() == 1) return std::move(items[0]);
  Expr e;
  e.kind = Expr::Kind::seq;
  e.items = std::move(items);
  return e;
}
Expr alt(std::vector<Expr> items) {
  if (items.size() == 1) return std::move(items[0]);
  Expr e;
  e.kind = Expr::Kind::alt;
  e.items = std::move(items);
  return e;
}
Expr repeat(Expr x, int min, int max) {
  Expr e;
  e.kind = Expr::Kind::repeat;
  e.items.push_back(std::move(x));
  e.min = min;
  e.max = max;
  return e;
}
Expr opt(Expr e) { return repeat(std::move(e), 0, 1); }
Expr star(Expr e) { return repeat(std::move(e), 0, -1); }
Expr plus(Expr e) { return repeat(std::move(e), 1, -1); }
Expr ref(RuleId r) {
  Expr e;
  e.kind = Expr::Kind::ref;
  e.rule = r;
  return e;
}
Expr empty() { return Expr{}; }

RuleId Builder::declare(std::string_view name) {
  names_.emplace_back(name);
  exprs_.emplace_back();
  defined_.push_back(false);
  return RuleId(exprs_.size() - 1);
}

void Builder::define(RuleId r, Expr e) {
  if (r >= exprs_.size()) throw GrammarError(fmt::format("grammar: rule id {} was never declared", r));
  if (defined_[r]) throw GrammarError(fmt::format("grammar: rule '{}' is defined twice", names_[r]));
  exprs_[r] = std::move(e);
  defined_[r] = true;
}

RuleId Builder::rule(std::string_view name, Expr e) {
  RuleId r = declare(name);
  define(r, std::move(e));
  return r;
}

bool Builder::defined(RuleId r) const { return r < defined_.size() && defined_[r]; }

namespace {

using Seq = std::vector<Element>;

// Code points lo..hi (same UTF-8 length, no surrogates) as byte-range sequences.
void utf8_split(char32_t lo, char32_t hi, std::vector<std::vector<std::pair<uint8_t, uint8_t>>>& out) {
  auto len = [](char32_t c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; };
  static const char32_t bounds[] = {0x7F, 0x7FF, 0xFFFF};
  for (char32_t b : bounds)
    if (lo <= b && hi > b) {
      utf8_split(lo, b, out);
      utf8_split(b + 1, hi, out);
      return;
    }
  const int n = len(lo);
  for (int i = 1; i < n; ++i) {
    const char32_t m = (char32_t(1) << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8_split(lo, lo | m, out);
        utf8_split((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        utf8_split(lo, (hi & ~m) - 1, out);
        utf8_split(hi & ~m, hi, out);
        return;
      }
    }
  }
  std::string a, b;
  append_utf8(a, lo);
  append_utf8(b, hi);
  std::vector<std::pair<uint8_t, uint8_t>> s;
  for (size_t i = 0; i < a.size(); ++i) s.emplace_back(uint8_t(a[i]), uint8_t(b[i]));
  out.push_back(std::move(s));
}

// Normalized ranges (sorted, merged, clipped to scalar values, surrogates removed, negation
// applied).
std::vector<CodeRange> normalize(std::vector<CodeRange> r, bool negated) {
  for (auto& x : r)
    if (x.lo > x.hi) std::swap(x.lo, x.hi);
  std::sort(r.begin(), r.end(), [](const CodeRange& a, const CodeRange& b) { return a.lo < b.lo; });
  std::vector<CodeRange> merged;
  for (const auto& x : r) {
    if (x.lo > 0x10FFFF) continue;
    CodeRange y{x.lo, std::min<char32_t>(x.hi, 0x10FFFF)};
    if (!merged.empty() && y.lo <= merged.back().hi + 1)
      merged.back().hi = std::max(merged.back().hi, y.hi);
    else
      merged.push_back(y);
  }
  if (negated) {
    std::vector<CodeRange> inv;
    char32_t next = 0;
    for (const auto& x : merged) {
      if (x.lo > next) inv.push_back({next, x.lo - 1});
      next = x.hi + 1;
    }
    if (next <= 0x10FFFF) inv.push_back({next, 0x10FFFF});
    merged = std::move(inv);
  }
  std::vector<CodeRange> out;
  for (const auto& x : merged) {  // cut out D800-DFFF
    if (x.hi < 0xD800 || x.lo > 0xDFFF) {
      out.push_back(x);
      continue;
    }
    if (x.lo < 0xD800) out.push_back({x.lo, 0xD7FF});
    if (x.hi > 0xDFFF) out.push_back({0xE000, x.hi});
  }
  return out;
}

class Lowering {
 public:
  Lowering(const std::vector<std::string>& names, const std::vector<Expr>& exprs, size_t max_rules)
      : exprs_(exprs), max_rules_(max_rules) {
    g_.rules.resize(exprs.size());
    for (size_t i = 0; i < exprs.size(); ++i) g_.rules[i].name = names[i];
  }

  Grammar run(RuleId root) {
    for (size_t i = 0; i < exprs_.size(); ++i) g_.rules[i].alternatives = alternatives(exprs_[i]);
    g_.root = root;
    return std::move(g_);
  }

 private:
  uint32_t intern(const ByteSet& s) {
    auto key = std::make_pair(std::make_pair(s.bits[0], s.bits[1]), std::make_pair(s.bits[2], s.bits[3]));
    auto [it, fresh] = sets_.try_emplace(key, uint32_t(g_.byte_sets.size()));
    if (fresh) g_.byte_sets.push_back(s);
    return it->second;
  }
  Element bytes_el(const ByteSet& s) { return {Element::Kind::bytes, intern(s)}; }
  Element rule_el(RuleId r) { return {Element::Kind::rule, r}; }

  RuleId helper(std::string name, std::vector<Seq> alts) {
    if (g_.rules.size() >= max_rules_)
      throw GrammarError(fmt::format("grammar: more than {} rules after expanding repetitions; lower the "
                                     "bounds of {{m,n}}, maxItems or maxLength",
                                     max_rules_));
    g_.rules.push_back({std::move(name), std::move(alts)});
    return RuleId(g_.rules.size() - 1);
  }

  std::vector<Seq> alternatives(const Expr& e) {
    if (e.kind == Expr::Kind::alt) {
      std::vector<Seq> out;
      for (const auto& x : e.items) {
        Seq s;
        append(x, s);
        out.push_back(std::move(s));
      }
      return out;
    }
    Seq s;
    append(e, s);
    return {std::move(s)};
  }

  // A rule for `e` (reused when e is already a lone reference).
  RuleId as_rule(const Expr& e, const char* what) {
    if (e.kind == Expr::Kind::ref) return e.rule;
    return helper(what, alternatives(e));
  }

  void append(const Expr& e, Seq& out) {
    switch (e.kind) {
      case Expr::Kind::literal:
        for (unsigned char c : e.text) {
          ByteSet s;
          s.set(c);
          out.push_back(bytes_el(s));
        }
        return;
      case Expr::Kind::bytes:
        if (e.byte_set.empty()) throw GrammarError("grammar: an empty byte class matches nothing");
        out.push_back(bytes_el(e.byte_set));
        return;
      case Expr::Kind::chars: return append_chars(e, out);
      case Expr::Kind::seq:
        for (const auto& x : e.items) append(x, out);
        return;
      case Expr::Kind::alt: out.push_back(rule_el(helper("alt", alternatives(e)))); return;
      case Expr::Kind::ref: out.push_back(rule_el(e.rule)); return;
      case Expr::Kind::repeat: return append_repeat(e, out);
    }
  }

  void append_chars(const Expr& e, Seq& out) {
    const auto ranges = normalize(e.ranges, e.negated);
    if (ranges.empty()) throw GrammarError("grammar: a character class matches no character");
    if (ranges.back().hi < 0x80) {  // ASCII only: one byte element
      ByteSet s;
      for (const auto& r : ranges) s.set_range(uint8_t(r.lo), uint8_t(r.hi));
      out.push_back(bytes_el(s));
      return;
    }
    std::string key;
    for (const auto& r : ranges) key += fmt::format("{:x}-{:x},", uint32_t(r.lo), uint32_t(r.hi));
    if (auto it = char_rules_.find(key); it != char_rules_.end()) {
      out.push_back(rule_el(it->second));
      return;
    }
    std::vector<std::vector<std::pair<uint8_t, uint8_t>>> pieces;
    for (const auto& r : ranges) utf8_split(r.lo, r.hi, pieces);
    // Merge pieces that differ only in the first byte range (all single-byte ones together).
    std::vector<Seq> alts;
    ByteSet ascii;
    for (const auto& p : pieces) {
      if (p.size() == 1) {
        ascii.set_range(p[0].first, p[0].second);
        continue;
      }
      Seq s;
      for (const auto& [lo, hi] : p) {
        ByteSet b;
        b.set_range(lo, hi);
        s.push_back(bytes_el(b));
      }
      alts.push_back(std::move(s));
    }
    if (!ascii.empty()) alts.insert(alts.begin(), Seq{bytes_el(ascii)});
    RuleId r = helper("char", std::move(alts));
    char_rules_.emplace(key, r);
    out.push_back(rule_el(r));
  }

  void append_repeat(const Expr& e, Seq& out) {
    if (e.min < 0 || (e.max >= 0 && e.max < e.min))
      throw GrammarError(fmt::format("grammar: bad repetition bounds {{{},{}}}", e.min, e.max));
    const Expr& x = e.items.at(0);
    if (e.max == 0) return;
    // One element when x lowers to one (a byte class); else a rule referenced each time.
    Seq one;
    append(x, one);
    if (one.size() != 1) one = {rule_el(helper("item", alternatives(x)))};
    const Element item = one[0];
    if (size_t(e.min) > max_rules_)
      throw GrammarError(fmt::format("grammar: a repetition of at least {} items is too long", e.min));
    for (int i = 0; i < e.min; ++i) out.push_back(item);
    if (e.max < 0) {  // R ::= item R | ε  (right recursion: the matcher's stack stays flat)
      RuleId r = helper("star", {});
      g_.rules[r].alternatives = {Seq{item, rule_el(r)}, Seq{}};
      out.push_back(rule_el(r));
      return;
    }
    // O_k ::= item O_{k-1} | ε, O_1 ::= item | ε
    RuleId prev = 0;
    for (int k = 1; k <= e.max - e.min; ++k) {
      Seq s{item};
      if (k > 1) s.push_back(rule_el(prev));
      prev = helper("opt", {std::move(s), Seq{}});
    }
    if (e.max > e.min) out.push_back(rule_el(prev));
  }

  const std::vector<Expr>& exprs_;
  size_t max_rules_;
  Grammar g_;
  std::map<std::pair<std::pair<uint64_t, uint64_t>, std::pair<uint64_t, uint64_t>>, uint32_t> sets_;
  std::map<std::string, RuleId> char_rules_;
};

// Nullable rules (those that can match the empty string).
std::vector<bool> nullable_rules(const Grammar& g) {
  std::vector<bool> nullable(g.rules.size(), false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < g.rules.size(); ++r) {
      if (nullable[r]) continue;
      for (const auto& a : g.rules[r].alternatives) {
        bool nu = true;
        for (const auto& el : a) nu = nu && el.kind == Element::Kind::rule && nullable[el.index];
        if (nu) {
          nullable[r] = changed = true;
          break;
        }
      }
    }
  }
  return nullable;
}

void validate(const Grammar& g) {
  const size_t n = g.rules.size();
  // Productive: a rule with an alternative of productive elements only.
  std::vector<bool> productive(n, false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < n; ++r) {
      if (productive[r]) continue;
      for (const auto& a : g.rules[r].alternatives) {
        bool p = true;
        for (const auto& el : a) p = p && (el.kind == Element::Kind::bytes || productive[el.index]);
        if (p) {
          productive[r] = changed = true;
          break;
        }
      }
    }
  }
  const std::vector<bool> nullable = nullable_rules(g);
  for (size_t r = 0; r < n; ++r)
    if (!productive[r])
      throw GrammarError(fmt::format("grammar: rule '{}' can never finish (every alternative recurses forever)",
                                     g.rules[r].name));
  // Left recursion: edges to rules reachable before any byte is consumed.
  std::vector<std::vector<uint32_t>> left(n);
  for (size_t r = 0; r < n; ++r)
    for (const auto& a : g.rules[r].alternatives)
      for (const auto& el : a) {
        if (el.kind == Element::Kind::bytes) break;
        left[r].push_back(el.index);
        if (!nullable[el.index]) break;
      }
  std::vector<uint8_t> color(n, 0);
  std::vector<uint32_t> path;
  std::vector<std::pair<uint32_t, size_t>> stack;
  for (uint32_t s = 0; s < n; ++s) {
    if (color[s]) continue;
    stack.push_back({s, 0});
    color[s] = 1;
    path.push_back(s);
    while (!stack.empty()) {
      auto& [r, i] = stack.back();
      if (i < left[r].size()) {
        uint32_t t = left[r][i++];
        if (color[t] == 1) {
          std::string cycle;
          auto from = std::find(path.begin(), path.end(), t);
          for (auto it = from; it != path.end(); ++it) cycle += g.rules[*it].name + " -> ";
          throw GrammarError("grammar: left recursion (" + cycle + g.rules[t].name +
                             "): a rule may not start with itself; rewrite it as repetition");
        }
        if (color[t] == 0) {
          color[t] = 1;
          path.push_back(t);
          stack.push_back({t, 0});
        }
      } else {
        color[r] = 2;
        path.pop_back();
        stack.pop_back();
      }
    }
  }
}

// `... X T` where X and T are rule calls (T last: a tail call) becomes one alternative per
// alternative of X, each ending in T. Repetition lowers to `item R`, so a repeated character
// class (a JSON string's content) then loops by tail calls alone: the matcher never pops out of
// the item between characters, which keeps most tokens decidable from one position.
bool inline_before_tail_once(Grammar& g) {
  const std::vector<bool> nullable = nullable_rules(g);
  constexpr size_t kMaxAlternatives = 32, kMaxLength = 64;
  bool any = false;
  for (size_t r = 0; r < g.rules.size(); ++r) {
    std::vector<std::vector<Element>> out;
    bool changed = false;
    for (auto& a : g.rules[r].alternatives) {
      const size_t n = a.size();
      if (n >= 2 && a[n - 1].kind == Element::Kind::rule && a[n - 2].kind == Element::Kind::rule) {
        const uint32_t x = a[n - 2].index;
        const auto& xs = g.rules[x].alternatives;
        bool small = x != r && !nullable[x] && xs.size() <= kMaxAlternatives;
        for (const auto& xa : xs) small = small && xa.size() <= kMaxLength;
        if (small) {
          for (const auto& xa : xs) {
            std::vector<Element> b(a.begin(), a.end() - 2);
            b.insert(b.end(), xa.begin(), xa.end());
            b.push_back(a[n - 1]);
            out.push_back(std::move(b));
          }
          changed = true;
          continue;
        }
      }
      out.push_back(a);
    }
    if (changed) g.rules[r].alternatives = std::move(out);
    any |= changed;
  }
  return any;
}

void inline_before_tail(Grammar& g) {
  for (int round = 0; round < 3 && inline_before_tail_once(g); ++round) {
  }
}

}  // namespace

Grammar Builder::build(RuleId root, size_t max_rules) const {
  if (root >= exprs_.size()) throw GrammarError("grammar: no root rule");
  for (size_t i = 0; i < exprs_.size(); ++i)
    if (!defined_[i]) throw GrammarError(fmt::format("grammar: rule '{}' is used but never defined", names_[i]));
  Builder fixed = *this;
  fixed.fix_nullable_repeats();
  Grammar g = Lowering(fixed.names_, fixed.exprs_, max_rules).run(root);
  validate(g);
  inline_before_tail(g);  // keeps the language; cannot create left recursion (X is not nullable)
  return g;
}

std::string Grammar::to_string() const {
  auto set_str = [](const ByteSet& s) {
    std::string out = "[";
    for (int b = 0; b < 256; ++b) {
      if (!s.has(uint8_t(b))) continue;
      int e = b;
      while (e + 1 < 256 && s.has(uint8_t(e + 1))) ++e;
      auto one = [](int c) { return c >= 0x21 && c < 0x7F && c != ']' && c != '\\' && c != '-' ? std::string(1, char(c)) : fmt::format("\\x{:02X}", c); };
      out += one(b);
      if (e > b) {
        out += '-';  // appended apart: GCC 12 warns falsely (-Wrestrict) on "-" + std::string
        out += one(e);
      }
      b = e;
    }
    return out + "]";
  };
  std::string out;
  for (size_t r = 0; r < rules.size(); ++r) {
    out += fmt::format("{}{}_{} ::=", r == root ? "root:" : "", rules[r].name, r);
    for (size_t a = 0; a < rules[r].alternatives.size(); ++a) {
      if (a) out += " |";
      if (rules[r].alternatives[a].empty()) out += " \"\"";
      for (const auto& el : rules[r].alternatives[a]) {
        out += ' ';
        out += el.kind == Element::Kind::bytes ? set_str(byte_sets[el.index])
                                               : fmt::format("{}_{}", rules[el.index].name, el.index);
      }
    }
    out += "\n";
  }
  return out;
}

}  // namespace moe::grammar
