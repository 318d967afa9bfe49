// Added tokens ("added_tokens" in tokenizer.json): matched in the input before the model runs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "runtime/tokenizer/bpe.h"

namespace moe::tok {

class Normalizer;

struct AddedToken {
  int32_t id = -1;  // as assigned by AddedVocabulary (the "id" field of the file is not used)
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
  // The string used for decoding / id_to_token: the normalized content for tokens with
  // normalized == true (HF caches it the same way), otherwise `content`.
  std::string decode_form;
};

// A range of the input: either an added token (id >= 0) or text still to tokenize (id == -1).
struct TextSplit {
  size_t start = 0;
  size_t end = 0;
  int32_t id = -1;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  // Registers `tokens` in file order the way HF does: a token whose content is already known
  // (an earlier added token or the model vocabulary) takes that id, any other the next free id
  // after the model vocabulary; a later entry with the same content replaces the earlier one.
  // `normalizer` (may be null) normalizes the content of tokens marked "normalized".
  AddedVocabulary(const std::vector<AddedToken>& tokens, const Bpe& model, const Normalizer* normalizer);

  // Splits on tokens with normalized == false (matched against the raw input).
  std::vector<TextSplit> split_raw(std::string_view s) const { return find(s, raw_); }
  // Splits on tokens with normalized == true (matched against normalized text).
  std::vector<TextSplit> split_normalized(std::string_view s) const { return find(s, normalized_); }

  std::optional<int32_t> token_to_id(std::string_view content) const;
  const AddedToken* by_id(int32_t id) const;
  bool is_special_content(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // Byte trie for leftmost-longest matching.
  struct Matcher {
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
      int32_t token = -1;                                       // index into tokens_
    };
    std::vector<Node> nodes{Node{}};
    void insert(std::string_view pattern, int32_t token);
    // Longest pattern starting at s[pos]: (token index, length) or token -1.
    std::pair<int32_t, size_t> longest_at(std::string_view s, size_t pos) const;
  };
  std::vector<TextSplit> find(std::string_view s, const Matcher& m) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> by_content_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_set<std::string, StringHash, std::equal_to<>> special_contents_;
  Matcher raw_;
  Matcher normalized_;
};

// Parses the "added_tokens" array.
std::vector<AddedToken> parse_added_tokens(const nlohmann::json& j);

}  // namespace moe::tok
