#include "runtime/tokenizer/pretokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <stdexcept>

#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/json_util.h"
#include "runtime/tokenizer/pattern_json.h"
#include "runtime/tokenizer/regex.h"
#include "runtime/tokenizer/unicode.h"

namespace moe::tok {

namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const nlohmann::json& j, const std::string& where) {
  std::string b = get_or<std::string>(j, "behavior", "Isolated");
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  throw std::runtime_error(where + ": unknown split behavior '" + b + "'");
}

// Every character satisfying `pred` is a match of its own (HF's Pattern for Fn(char) -> bool).
std::vector<MatchPiece> char_matches(const std::string& s,
                                     const std::function<bool(char32_t)>& pred) {
  std::vector<MatchPiece> out;
  if (s.empty()) {
    out.push_back({0, 0, false});
    return out;
  }
  size_t last = 0, i = 0;
  while (i < s.size()) {
    size_t b = i;
    char32_t c = next_code_point(s, i);
    if (pred(c)) {
      if (last < b) out.push_back({last, b, false});
      out.push_back({b, i, true});
      last = i;
    }
  }
  if (last < s.size()) out.push_back({last, s.size(), false});
  return out;
}

// HF NormalizedString::split: turns matches into kept ranges according to the behavior.
void split_by_behavior(const Piece& piece, std::vector<MatchPiece> m, Behavior behavior,
                       bool invert, std::vector<Piece>& out) {
  if (invert) {
    for (auto& x : m) x.is_match = !x.is_match;
  }
  struct Range {
    size_t start, end;
    bool remove;
  };
  std::vector<Range> ranges;
  ranges.reserve(m.size());
  switch (behavior) {
    case Behavior::Isolated:
      for (const auto& x : m) ranges.push_back({x.start, x.end, false});
      break;
    case Behavior::Removed:
      for (const auto& x : m) ranges.push_back({x.start, x.end, x.is_match});
      break;
    case Behavior::Contiguous: {
      bool prev_match = false;
      for (const auto& x : m) {
        if (x.is_match == prev_match && !ranges.empty()) {
          ranges.back().end = x.end;
        } else {
          ranges.push_back({x.start, x.end, false});
        }
        prev_match = x.is_match;
      }
      break;
    }
    case Behavior::MergedWithPrevious: {
      bool prev_match = false;
      for (const auto& x : m) {
        if (x.is_match && !prev_match && !ranges.empty()) {
          ranges.back().end = x.end;
        } else {
          ranges.push_back({x.start, x.end, false});
        }
        prev_match = x.is_match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool prev_match = false;
      for (auto it = m.rbegin(); it != m.rend(); ++it) {
        if (it->is_match && !prev_match && !ranges.empty()) {
          ranges.back().start = it->start;
        } else {
          ranges.push_back({it->start, it->end, false});
        }
        prev_match = it->is_match;
      }
      std::reverse(ranges.begin(), ranges.end());
      break;
    }
  }
  for (const auto& r : ranges) {
    if (r.remove || r.end <= r.start) continue;
    out.push_back({piece.text.substr(r.start, r.end - r.start), piece.at_origin && r.start == 0});
  }
}

template <typename Fn>
void for_each_piece(std::vector<Piece>& pieces, Fn&& fn) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (auto& p : pieces) fn(p, out);
  std::erase_if(out, [](const Piece& p) { return p.text.empty(); });
  pieces = std::move(out);
}

class Split final : public PreTokenizer {
 public:
  Split(Pattern p, Behavior b, bool invert) : pattern_(std::move(p)), behavior_(b), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      split_by_behavior(p, pattern_.find_matches(p.text), behavior_, invert_, out);
    });
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {
    if (use_regex_) pattern_ = Pattern::regex(kGpt2Regex);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text = " " + p.text;
      if (use_regex_) {
        split_by_behavior(p, pattern_.find_matches(p.text), Behavior::Isolated, false, out);
      } else {
        out.push_back(std::move(p));
      }
    });
    for (auto& p : pieces) p.text = bytes_to_unicode(p.text);
  }

 private:
  bool add_prefix_space_;
  bool use_regex_;
  Pattern pattern_;
};

enum class PrependScheme { First, Never, Always };

class Metaspace final : public PreTokenizer {
 public:
  Metaspace(char32_t replacement, PrependScheme scheme, bool split)
      : replacement_(replacement), scheme_(scheme), split_(split) {
    append_utf8(rep_, replacement);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      std::string s;
      s.reserve(p.text.size() + rep_.size());
      for (char c : p.text) {
        if (c == ' ') {
          s += rep_;
        } else {
          s.push_back(c);
        }
      }
      bool starts = s.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (scheme_ == PrependScheme::Always ||
                      (scheme_ == PrependScheme::First && p.at_origin))) {
        s = rep_ + s;
      }
      p.text = std::move(s);
      if (split_) {
        char32_t r = replacement_;
        split_by_behavior(p, char_matches(p.text, [r](char32_t c) { return c == r; }),
                          Behavior::MergedWithNext, false, out);
      } else {
        out.push_back(std::move(p));
      }
    });
  }

 private:
  char32_t replacement_;
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
};

// Splits on characters satisfying a predicate (Digits, Punctuation, WhitespaceSplit).
class CharSplit final : public PreTokenizer {
 public:
  CharSplit(std::function<bool(char32_t)> pred, Behavior b) : pred_(std::move(pred)), behavior_(b) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      split_by_behavior(p, char_matches(p.text, pred_), behavior_, false, out);
    });
  }

 private:
  std::function<bool(char32_t)> pred_;
  Behavior behavior_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> items)
      : items_(std::move(items)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& p : items_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> items_;
};

char32_t single_char(const std::string& s, const std::string& where) {
  size_t i = 0;
  if (s.empty()) throw std::runtime_error(where + ": replacement must be one character");
  char32_t c = next_code_point(s, i);
  if (i != s.size()) throw std::runtime_error(where + ": replacement must be one character");
  return c;
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, int depth) {
  if (j.is_null()) return nullptr;
  check_component_depth(depth, "pre_tokenizer");
  std::string type = component_type(j, "pre_tokenizer");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> items;
    for (const auto& p : required_array(j, "pretokenizers", "Sequence pre_tokenizer")) {
      if (auto x = make_pre_tokenizer(p, depth + 1)) items.push_back(std::move(x));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(items));
  }
  if (type == "Split") {
    return std::make_unique<Split>(pattern_from_json(j, "Split pre_tokenizer"),
                                   parse_behavior(j, "Split pre_tokenizer"),
                                   get_or(j, "invert", false));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevel>(get_or(j, "add_prefix_space", true),
                                       get_or(j, "use_regex", true));
  }
  if (type == "Metaspace") {
    std::string rep = get_or<std::string>(j, "replacement", "\xE2\x96\x81");
    PrependScheme scheme = get_or(j, "add_prefix_space", true) ? PrependScheme::Always
                                                                : PrependScheme::Never;
    if (auto it = j.find("prepend_scheme"); it != j.end() && it->is_string()) {
      std::string s = it->get<std::string>();
      if (s == "first") {
        scheme = PrependScheme::First;
      } else if (s == "always") {
        scheme = PrependScheme::Always;
      } else if (s == "never") {
        scheme = PrependScheme::Never;
      } else {
        throw std::runtime_error("Metaspace pre_tokenizer: unknown prepend_scheme '" + s + "'");
      }
    }
    return std::make_unique<Metaspace>(single_char(rep, "Metaspace pre_tokenizer"), scheme,
                                       get_or(j, "split", true));
  }
  if (type == "Digits") {
    return std::make_unique<CharSplit>(
        is_numeric, get_or(j, "individual_digits", false) ? Behavior::Isolated
                                                          : Behavior::Contiguous);
  }
  if (type == "Punctuation") {
    return std::make_unique<CharSplit>(is_punctuation, parse_behavior(j, "Punctuation pre_tokenizer"));
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<CharSplit>(is_whitespace, Behavior::Removed);
  }
  if (type == "Whitespace") {
    return std::make_unique<Split>(Pattern::regex(R"(\w+|[^\w\s]+)"), Behavior::Removed, true);
  }
  throw std::runtime_error("unsupported pre_tokenizer type '" + type +
                           "' (supported: Sequence, Split, ByteLevel, Metaspace, Digits, "
                           "Punctuation, Whitespace, WhitespaceSplit)");
}

}  // namespace moe::tok
