#include "runtime/tokenizer/added_tokens.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

#include "runtime/tokenizer/json_util.h"
#include "runtime/tokenizer/normalizer.h"
#include "runtime/tokenizer/unicode.h"

namespace moe::tok {

namespace {

char32_t first_char(std::string_view s) {
  size_t i = 0;
  return next_code_point(s, i);
}

char32_t last_char(std::string_view s) {
  size_t k = s.size() - 1;
  while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
  return first_char(s.substr(k));
}

// Start of the run of whitespace at the end of s (s.size() if none).
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t k = end - 1;
    while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
    if (!is_whitespace(first_char(s.substr(k)))) break;
    end = k;
  }
  return end;
}

// Length of the run of whitespace at the start of s.
size_t leading_space_len(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!is_whitespace(next_code_point(s, j))) break;
    i = j;
  }
  return i;
}

}  // namespace

std::vector<AddedToken> parse_added_tokens(const nlohmann::json& j) {
  std::vector<AddedToken> out;
  if (j.is_null()) return out;
  if (!j.is_array()) throw std::runtime_error("\"added_tokens\" must be an array");
  for (const auto& t : j) {
    AddedToken a;
    a.id = get_required<int32_t>(t, "id", "added token");
    a.content = get_required<std::string>(t, "content", "added token");
    a.single_word = get_or(t, "single_word", false);
    a.lstrip = get_or(t, "lstrip", false);
    a.rstrip = get_or(t, "rstrip", false);
    a.normalized = get_or(t, "normalized", true);
    a.special = get_or(t, "special", false);
    if (a.id < 0) throw std::runtime_error("added token '" + a.content + "' has a negative id");
    out.push_back(std::move(a));
  }
  return out;
}

void AddedVocabulary::Matcher::insert(std::string_view pattern, int32_t token) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (unsigned char b : pattern) {
    auto& ch = nodes[static_cast<size_t>(node)].children;
    auto it = std::lower_bound(ch.begin(), ch.end(), b,
                               [](const auto& p, unsigned char v) { return p.first < v; });
    if (it != ch.end() && it->first == b) {
      node = it->second;
    } else {
      int32_t child = static_cast<int32_t>(nodes.size());
      ch.insert(it, {b, child});  // invalidates `ch` only; nodes grows below
      nodes.emplace_back();
      node = child;
    }
  }
  nodes[static_cast<size_t>(node)].token = token;
}

std::pair<int32_t, size_t> AddedVocabulary::Matcher::longest_at(std::string_view s,
                                                                size_t pos) const {
  std::pair<int32_t, size_t> best{-1, 0};
  int32_t node = 0;
  for (size_t i = pos; i < s.size(); ++i) {
    const auto& ch = nodes[static_cast<size_t>(node)].children;
    unsigned char b = static_cast<unsigned char>(s[i]);
    auto it = std::lower_bound(ch.begin(), ch.end(), b,
                               [](const auto& p, unsigned char v) { return p.first < v; });
    if (it == ch.end() || it->first != b) break;
    node = it->second;
    if (nodes[static_cast<size_t>(node)].token >= 0) {
      best = {nodes[static_cast<size_t>(node)].token, i + 1 - pos};
    }
  }
  return best;
}

AddedVocabulary::AddedVocabulary(const std::vector<AddedToken>& tokens, const Bpe& model,
                                 const Normalizer* normalizer) {
  auto same = [](const AddedToken& a, const AddedToken& b) {
    return a.content == b.content && a.single_word == b.single_word && a.lstrip == b.lstrip &&
           a.rstrip == b.rstrip && a.normalized == b.normalized && a.special == b.special;
  };
  std::unordered_map<int32_t, std::string> normalized_cache;
  int32_t next_id = static_cast<int32_t>(model.vocab().size());
  for (AddedToken t : tokens) {
    if (t.content.empty()) continue;
    auto known = by_content_.find(t.content);
    if (known != by_content_.end() && same(tokens_[by_id_[known->second]], t)) continue;
    if (known != by_content_.end()) {
      t.id = known->second;
    } else if (auto id = model.token_to_id(t.content)) {
      t.id = *id;
    } else {
      t.id = next_id++;
    }
    if (t.normalized && normalizer) {
      std::string n = t.content;
      bool at_origin = true;
      normalizer->normalize(n, at_origin);
      if (n != t.content) normalized_cache[t.id] = std::move(n);  // HF never drops an entry
    }
    by_content_[t.content] = t.id;
    if (t.special) special_contents_.insert(t.content);
    if (auto it = by_id_.find(t.id); it != by_id_.end()) {
      tokens_[it->second] = std::move(t);
    } else {
      by_id_[t.id] = tokens_.size();
      tokens_.push_back(std::move(t));
    }
  }
  for (size_t i = 0; i < tokens_.size(); ++i) {
    AddedToken& t = tokens_[i];
    auto cached = normalized_cache.find(t.id);
    t.decode_form = cached != normalized_cache.end() ? cached->second : t.content;
    if (t.normalized) {
      normalized_.insert(t.decode_form, static_cast<int32_t>(i));
    } else {
      raw_.insert(t.content, static_cast<int32_t>(i));
    }
  }
}

std::vector<TextSplit> AddedVocabulary::find(std::string_view s, const Matcher& m) const {
  std::vector<TextSplit> splits;
  if (m.nodes.size() > 1) {
    size_t start_offset = 0;
    size_t pos = 0;
    // [space_from, space_end): a whitespace run found by rstrip, reused so that many matches
    // inside one long run (a whitespace added token) do not each rescan it to its end.
    size_t space_from = 0, space_end = 0;
    while (pos < s.size()) {
      auto [index, len] = m.longest_at(s, pos);
      if (index < 0) {
        ++pos;
        continue;
      }
      size_t start = pos, stop = pos + len;
      pos = stop;  // the next search resumes after this match, even if it is discarded
      const AddedToken& t = tokens_[static_cast<size_t>(index)];
      if (t.single_word) {
        bool start_space = start == 0 || !is_word_char(last_char(s.substr(0, start)));
        bool stop_space = stop == s.size() || !is_word_char(first_char(s.substr(stop)));
        if (!start_space || !stop_space) continue;
      }
      // lstrip looks back no further than start_offset (what lies before is already split off).
      if (t.lstrip) {
        start = start <= start_offset
                    ? start_offset
                    : start_offset + trailing_space_start(s.substr(start_offset, start - start_offset));
      }
      if (t.rstrip) {
        if (stop < space_from || stop >= space_end) {
          space_from = stop;
          space_end = stop + leading_space_len(s.substr(stop));
        }
        stop = space_end;
      }
      if (start_offset < start) splits.push_back({start_offset, start, -1});
      splits.push_back({start, stop, t.id});
      start_offset = stop;
    }
    if (start_offset != s.size()) splits.push_back({start_offset, s.size(), -1});
  } else if (!s.empty()) {
    splits.push_back({0, s.size(), -1});
  }
  return splits;
}

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  auto it = by_content_.find(content);
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

bool AddedVocabulary::is_special_content(std::string_view content) const {
  return special_contents_.find(content) != special_contents_.end();
}

}  // namespace moe::tok
