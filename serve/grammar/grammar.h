// A context-free grammar over bytes: what JSON Schemas, GBNF files and regexes compile to, and
// what the token matcher (matcher.h) runs. Built with `Builder` from expressions; `build()`
// lowers repetition to right recursion (so matching keeps a bounded stack) and code-point
// classes to UTF-8 byte sequences, and validates the result (no left recursion, no empty rule).
#pragma once
#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace moe::grammar {

// A schema, grammar or regex the compilers cannot take: the message names the construct and,
// where known, the JSON path or source line. The server answers it with a 400.
class GrammarError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ByteSet {
  std::array<uint64_t, 4> bits{};
  void set(uint8_t b) { bits[b >> 6] |= uint64_t(1) << (b & 63); }
  void set_range(uint8_t lo, uint8_t hi) {
    for (int b = lo; b <= hi; ++b) set(uint8_t(b));
  }
  bool has(uint8_t b) const { return (bits[b >> 6] >> (b & 63)) & 1; }
  bool empty() const { return (bits[0] | bits[1] | bits[2] | bits[3]) == 0; }
  bool operator==(const ByteSet&) const = default;
};

// The flat form the matcher runs. Rule 0..n-1; each alternative is a sequence of elements; an
// empty alternative matches the empty string.
struct Element {
  enum class Kind : uint8_t { bytes, rule };
  Kind kind = Kind::bytes;
  uint32_t index = 0;  // bytes: index into Grammar::byte_sets; rule: a rule id
};

struct Rule {
  std::string name;
  std::vector<std::vector<Element>> alternatives;
};

struct Grammar {
  std::vector<Rule> rules;
  std::vector<ByteSet> byte_sets;
  uint32_t root = 0;
  // A GBNF-style listing, for errors and debugging.
  std::string to_string() const;
};

// Unicode code points lo..hi inclusive.
struct CodeRange {
  char32_t lo = 0, hi = 0;
};

using RuleId = uint32_t;

// An expression: the compilers' vocabulary. Cheap to copy for the small trees compilers build.
struct Expr {
  enum class Kind : uint8_t { literal, bytes, chars, seq, alt, repeat, ref };
  Kind kind = Kind::seq;  // an empty seq matches the empty string
  std::string text;                  // literal: raw bytes
  ByteSet byte_set;                  // bytes: one byte from the set
  std::vector<CodeRange> ranges;     // chars: one UTF-8 encoded code point ...
  bool negated = false;              // ... in (or, negated, outside) the ranges; never a surrogate
  std::vector<Expr> items;           // seq, alt: the parts; repeat: one item
  int min = 0, max = -1;             // repeat: max -1 is unbounded
  RuleId rule = 0;                   // ref
};

Expr lit(std::string_view bytes);
Expr byte_set(const ByteSet& s);
Expr chars(std::vector<CodeRange> ranges, bool negated = false);
Expr any_char();  // any Unicode scalar value, UTF-8 encoded
Expr seq(std::vector<Expr> items);
Expr alt(std::vector<Expr> items);
Expr repeat(Expr e, int min, int max);  // max -1: unbounded
Expr opt(Expr e);
Expr star(Expr e);
Expr plus(Expr e);
Expr ref(RuleId r);
Expr empty();

class Builder {
 public:
  // Declares a rule (forward references allowed); define it once before build(). Names are
  // for listings only; a repeated name gets a numeric suffix.
  RuleId declare(std::string_view name);
  void define(RuleId r, Expr e);
  RuleId rule(std::string_view name, Expr e);  // declare + define
  bool defined(RuleId r) const;
  size_t rule_count() const { return exprs_.size(); }
  // Lowers and validates. Throws GrammarError for an undefined rule, a rule that can match
  // nothing, left recursion, or more than `max_rules` rules after lowering (bounded repeats
  // unroll; the bound keeps a hostile {0,1000000} from eating memory).
  Grammar build(RuleId root, size_t max_rules = 200000) const;

 private:
  // x* over an x that can match "" would lower to left recursion: such repeats become repeats
  // of x's non-empty part (grammar_nullable.cpp).
  void fix_nullable_repeats();
  std::vector<std::string> names_;
  std::vector<Expr> exprs_;
  std::vector<bool> defined_;
};

// The automaton that finds `marker` in a byte stream (Knuth-Morris-Pratt), for grammars of "any
// text up to a marker": for each count k of marker bytes matched so far (0 <= k < size), the
// bytes below `limit` grouped by the count they lead to (index size: the marker is complete).
std::vector<std::vector<ByteSet>> marker_steps(std::string_view marker, int limit = 256);

// Appends the UTF-8 encoding of `c`.
void append_utf8(std::string& out, char32_t c);

}  // namespace moe::grammar
