#include "serve/grammar/token_vocab.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "runtime/tokenizer/tokenizer.h"
#include "serve/grammar/grammar.h"

namespace moe::grammar {

std::shared_ptr<const TokenVocab> TokenVocab::create(std::vector<std::string> bytes, std::vector<int32_t> end_tokens) {
  auto v = std::shared_ptr<TokenVocab>(new TokenVocab());
  v->bytes_ = std::move(bytes);
  v->is_end_.assign(v->bytes_.size(), 0);
  for (int32_t t : end_tokens) {
    if (t < 0 || size_t(t) >= v->bytes_.size())
      throw GrammarError(fmt::format("grammar: end token {} is outside the vocabulary of {}", t, v->bytes_.size()));
    if (!v->is_end_[size_t(t)]) v->end_.push_back(t);
    v->is_end_[size_t(t)] = 1;
  }
  // Tokens by bytes; end tokens and empty ones stay out of the trie.
  std::vector<int32_t> ids;
  for (size_t i = 0; i < v->bytes_.size(); ++i)
    if (!v->is_end_[i] && !v->bytes_[i].empty()) ids.push_back(int32_t(i));
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    const auto& x = v->bytes_[size_t(a)];
    const auto& y = v->bytes_[size_t(b)];
    return x != y ? x < y : a < b;
  });
  // Preorder: each new string adds the nodes of its bytes past the common prefix with the last.
  std::vector<uint32_t> path;  // node index per depth-1 of the current string
  const std::string* prev = nullptr;
  auto close_to = [&](size_t depth) {
    while (path.size() > depth) {
      v->nodes_[path.back()].subtree_end = uint32_t(v->nodes_.size());
      path.pop_back();
    }
  };
  for (int32_t id : ids) {
    const std::string& s = v->bytes_[size_t(id)];
    size_t common = 0;
    if (prev) {
      const size_t m = std::min(prev->size(), s.size());
      while (common < m && (*prev)[common] == s[common]) ++common;
    }
    close_to(common);
    for (size_t d = common; d < s.size(); ++d) {
      Node n;
      n.byte = uint8_t(s[d]);
      n.depth = uint32_t(d + 1);
      path.push_back(uint32_t(v->nodes_.size()));
      v->nodes_.push_back(n);
    }
    Node& last = v->nodes_[path.back()];
    if (last.token_count == 0) last.first_token = uint32_t(v->token_ids_.size());
    if (last.token_count == UINT16_MAX) throw GrammarError("grammar: too many tokens with the same bytes");
    ++last.token_count;  // equal strings are adjacent, so their ids are contiguous
    v->token_ids_.push_back(id);
    v->max_depth_ = std::max(v->max_depth_, s.size());
    prev = &s;
  }
  close_to(0);
  return v;
}

bool TokenVocab::is_end(int32_t id) const { return id >= 0 && size_t(id) < is_end_.size() && is_end_[size_t(id)]; }

std::shared_ptr<const TokenVocab> TokenVocab::from_tokenizer(const Tokenizer& tok, std::vector<int32_t> end_tokens) {
  const int32_t n = tok.vocab_size();
  const size_t count = size_t(n);
  std::vector<std::string> bytes(count);
  for (int32_t i = 0; i < n; ++i)
    if (!tok.is_special(i)) bytes[size_t(i)] = tok.token_bytes(i);
  return create(std::move(bytes), std::move(end_tokens));
}

}  // namespace moe::grammar
