// PCRE2-backed regular expressions with the semantics of the Oniguruma patterns found in
// tokenizer.json files, and the literal-or-regex `Pattern` used by Split/Replace components.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moe::tok {

struct Span {
  size_t start = 0;
  size_t end = 0;
};

// One piece of a string partition: a match of the pattern or the text between matches.
struct MatchPiece {
  size_t start = 0;
  size_t end = 0;
  bool is_match = false;
};

// Rewrites an Oniguruma (HF) pattern into an equivalent PCRE2 pattern: \s, \S, \w, \W, \d, \D
// and \h use Oniguruma's Unicode definitions.
std::string onig_to_pcre2(std::string_view pattern);

class Regex {
 public:
  // Compiles (and JIT-compiles) the Oniguruma-syntax pattern. Throws std::runtime_error.
  explicit Regex(std::string_view pattern);
  // Non-overlapping matches left to right, with Oniguruma's handling of empty matches.
  // `s` must be valid UTF-8.
  std::vector<Span> find_all(std::string_view s) const;
  const std::string& source() const { return source_; }

 private:
  bool search(std::string_view s, size_t pos, Span& m, size_t& rescanned) const;
  struct Code;
  std::shared_ptr<Code> code_;
  std::string source_;
};

// A tokenizer.json pattern: {"String": "..."} (literal) or {"Regex": "..."}.
class Pattern {
 public:
  static Pattern literal(std::string s);
  static Pattern regex(std::string_view re);

  std::vector<Span> find_all(std::string_view s) const;
  // The whole of `s` split into matches and non-matches (HF Pattern::find_matches).
  std::vector<MatchPiece> find_matches(std::string_view s) const;
  // Replaces every match with `content`.
  std::string replace_all(std::string_view s, std::string_view content) const;

 private:
  std::string literal_;
  std::shared_ptr<Regex> regex_;
};

}  // namespace moe::tok
