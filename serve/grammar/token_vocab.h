// The vocabulary as the grammar sees it: the bytes each token adds to the text, which tokens end
// a generation, and a byte trie over all tokens laid out in preorder (a node's subtree is the
// index range [node, end)), so a walk can skip a whole subtree in one step.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace moe {
class Tokenizer;
}

namespace moe::grammar {

class TokenVocab {
 public:
  // bytes[i]: what token i adds mid-text; an empty entry (special tokens) is never allowed by a
  // grammar. end_tokens: tokens that end a generation (EOS, <|im_end|>); allowed exactly when
  // the text is complete. Throws GrammarError for an end token outside the vocabulary.
  static std::shared_ptr<const TokenVocab> create(std::vector<std::string> bytes, std::vector<int32_t> end_tokens);
  // From a tokenizer: Tokenizer::token_bytes for each id, special tokens empty.
  static std::shared_ptr<const TokenVocab> from_tokenizer(const Tokenizer& tok, std::vector<int32_t> end_tokens);

  int32_t size() const { return int32_t(bytes_.size()); }
  const std::string& bytes(int32_t id) const { return bytes_[size_t(id)]; }
  bool is_end(int32_t id) const;
  const std::vector<int32_t>& end_tokens() const { return end_; }

  // The trie. Node n (0 <= n < nodes()) is the prefix path(n); its last byte is byte(n), its
  // depth (= prefix length) depth(n) >= 1, its subtree is [n, subtree_end(n)), and the tokens
  // whose bytes equal path(n) are tokens_at(n) (often none). The root (empty prefix) is implicit:
  // its children are the depth-1 nodes.
  struct Node {
    uint32_t subtree_end = 0;
    uint32_t first_token = 0;  // into token_ids_
    uint16_t token_count = 0;
    uint8_t byte = 0;
    uint8_t pad = 0;
    uint32_t depth = 0;
  };
  uint32_t nodes() const { return uint32_t(nodes_.size()); }
  const Node& node(uint32_t n) const { return nodes_[n]; }
  const int32_t* tokens_at(uint32_t n) const { return token_ids_.data() + nodes_[n].first_token; }
  size_t max_depth() const { return max_depth_; }

 private:
  std::vector<std::string> bytes_;
  std::vector<int32_t> end_;
  std::vector<uint8_t> is_end_;
  std::vector<Node> nodes_;
  std::vector<int32_t> token_ids_;
  size_t max_depth_ = 0;
};

}  // namespace moe::grammar
