#include "runtime/tokenizer/bpe.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <queue>
#include <stdexcept>

#include "runtime/tokenizer/json_util.h"
#include "runtime/tokenizer/unicode.h"

namespace moe::tok {

namespace {

std::optional<std::string> optional_string(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw std::runtime_error(std::string("BPE model: \"") + key + "\" must be a string");
  return it->get<std::string>();
}

}  // namespace

Bpe::Bpe(const nlohmann::json& model) {
  const auto& vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) {
    throw std::runtime_error("BPE model has no \"vocab\" object");
  }
  vocab_.reserve(vocab->size());
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      throw std::runtime_error("BPE model: vocab entry '" + token + "' has an invalid id");
    }
    int32_t i = id.get<int32_t>();
    vocab_[token] = i;
    max_id_ = std::max(max_id_, i);
  }
  if (static_cast<size_t>(max_id_) > 4 * vocab_.size() + 4096) {
    throw std::runtime_error("BPE model: vocab ids are too sparse (largest id " +
                             std::to_string(max_id_) + " for " + std::to_string(vocab_.size()) +
                             " tokens)");
  }
  vocab_r_.assign(static_cast<size_t>(max_id_ + 1), nullptr);
  for (const auto& [token, id] : vocab_) vocab_r_[static_cast<size_t>(id)] = &token;

  unk_token_ = optional_string(model, "unk_token");
  continuing_subword_prefix_ = optional_string(model, "continuing_subword_prefix").value_or("");
  end_of_word_suffix_ = optional_string(model, "end_of_word_suffix").value_or("");
  fuse_unk_ = get_or(model, "fuse_unk", false);
  byte_fallback_ = get_or(model, "byte_fallback", false);
  ignore_merges_ = get_or(model, "ignore_merges", false);

  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = vocab_.find(std::string_view(name));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }

  auto merges = model.find("merges");
  if (merges == model.end() || merges->is_null()) return;
  if (!merges->is_array()) throw std::runtime_error("BPE model: \"merges\" must be an array");
  merges_.reserve(merges->size());
  auto lookup = [&](const std::string& tok, size_t rank) {
    auto it = vocab_.find(tok);
    if (it == vocab_.end()) {
      throw std::runtime_error("BPE model: merge #" + std::to_string(rank + 1) +
                               " refers to unknown token '" + tok + "'");
    }
    return it->second;
  };
  size_t prefix_len = continuing_subword_prefix_.size();
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const auto& m = (*merges)[rank];
    std::string a, b;
    if (m.is_string()) {
      const std::string& line = m.get_ref<const std::string&>();
      size_t sp = line.find(' ');
      if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos) {
        throw std::runtime_error("BPE model: merge #" + std::to_string(rank + 1) + " '" + line +
                                 "' is not of the form \"a b\"");
      }
      a = line.substr(0, sp);
      b = line.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      throw std::runtime_error("BPE model: merge #" + std::to_string(rank + 1) +
                               " must be \"a b\" or [\"a\", \"b\"]");
    }
    int32_t ida = lookup(a, rank);
    int32_t idb = lookup(b, rank);
    std::string merged = a + (b.size() >= prefix_len ? b.substr(prefix_len) : std::string());
    int32_t idm = lookup(merged, rank);
    merges_[pair_key(ida, idb)] = MergeInfo{static_cast<uint32_t>(rank), idm};  // later wins
  }
}

std::optional<int32_t> Bpe::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* Bpe::id_to_token(int32_t id) const {
  if (id < 0 || id > max_id_) return nullptr;
  return vocab_r_[static_cast<size_t>(id)];
}

void Bpe::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  bool cacheable = word.size() <= kMaxCachedWordLen;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::string(word), std::move(ids));
  }
}

void Bpe::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    size_t len;  // bytes of the input covered; 0 once merged away
  };
  std::vector<Symbol> symbols;
  symbols.reserve(w.size());
  auto add = [&](int32_t id, size_t byte_len) {
    int32_t n = static_cast<int32_t>(symbols.size());
    if (n > 0) symbols.back().next = n;
    symbols.push_back({id, n - 1, -1, byte_len});
  };

  // Pending unknown token (HF keeps it open so that consecutive unknowns can be fused).
  bool have_unk = false;
  int32_t unk_tok = -1;
  size_t unk_len = 0;
  auto unk_id = [&]() -> int32_t {
    auto it = vocab_.find(*unk_token_);
    if (it == vocab_.end()) {
      throw std::runtime_error("BPE model: unk_token '" + *unk_token_ + "' is not in the vocabulary");
    }
    return it->second;
  };

  std::string buf;
  size_t i = 0;
  while (i < w.size()) {
    size_t start = i;
    i += utf8_seq_len(static_cast<unsigned char>(w[i]));
    if (i > w.size()) i = w.size();
    size_t byte_len = i - start;
    std::string_view s = w.substr(start, byte_len);
    if ((start != 0 && !continuing_subword_prefix_.empty()) ||
        (i == w.size() && !end_of_word_suffix_.empty())) {
      buf.clear();
      if (start != 0) buf += continuing_subword_prefix_;
      buf.append(s);
      if (i == w.size()) buf += end_of_word_suffix_;
      s = buf;
    }
    if (auto it = vocab_.find(s); it != vocab_.end()) {
      if (have_unk) {
        add(unk_tok, unk_len);
        have_unk = false;
      }
      add(it->second, byte_len);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : s) all = all && byte_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : s) add(byte_ids_[b], 1);
        continue;
      }
    }
    if (unk_token_) {
      if (have_unk && fuse_unk_) {
        unk_len += byte_len;
      } else {
        if (have_unk) add(unk_tok, unk_len);
        have_unk = true;
        unk_tok = unk_id();
        unk_len = byte_len;
      }
    }
  }
  if (have_unk) add(unk_tok, unk_len);

  // Merge the best-ranked pair first (leftmost on ties), exactly like HF's Word::merge_all.
  struct Merge {
    size_t pos;
    uint32_t rank;
    int32_t new_id;
  };
  auto worse = [](const Merge& a, const Merge& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::priority_queue<Merge, std::vector<Merge>, decltype(worse)> queue(worse);
  auto find_merge = [&](int32_t a, int32_t b) -> const MergeInfo* {
    auto it = merges_.find(pair_key(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (size_t k = 0; k + 1 < symbols.size(); ++k) {
    if (const MergeInfo* m = find_merge(symbols[k].id, symbols[k + 1].id)) {
      queue.push({k, m->rank, m->new_id});
    }
  }
  while (!queue.empty()) {
    Merge top = queue.top();
    queue.pop();
    Symbol& cur = symbols[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    size_t next_pos = static_cast<size_t>(cur.next);
    Symbol right = symbols[next_pos];
    const MergeInfo* still = find_merge(cur.id, right.id);
    if (!still || still->new_id != top.new_id) continue;  // stale queue entry
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    symbols[next_pos].len = 0;
    if (right.next >= 0 && static_cast<size_t>(right.next) < symbols.size()) {
      symbols[static_cast<size_t>(right.next)].prev = static_cast<int32_t>(top.pos);
    }
    if (cur.prev >= 0) {
      const Symbol& prev = symbols[static_cast<size_t>(cur.prev)];
      if (const MergeInfo* m = find_merge(prev.id, cur.id)) {
        queue.push({static_cast<size_t>(cur.prev), m->rank, m->new_id});
      }
    }
    if (cur.next >= 0 && static_cast<size_t>(cur.next) < symbols.size()) {
      const Symbol& nxt = symbols[static_cast<size_t>(cur.next)];
      if (const MergeInfo* m = find_merge(cur.id, nxt.id)) {
        queue.push({top.pos, m->rank, m->new_id});
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (s.len != 0) out.push_back(s.id);
  }
}

}  // namespace moe::tok
