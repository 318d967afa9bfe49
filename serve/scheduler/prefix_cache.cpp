#include "serve/scheduler/prefix_cache.h"

#include <algorithm>

namespace moe::serve {
namespace {

uint64_t mix(uint64_t h, uint64_t v) {  // splitmix64 step over the running hash
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

}  // namespace

int64_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  const auto [ia, ib] = std::mismatch(a.begin(), a.begin() + ptrdiff_t(std::min(a.size(), b.size())), b.begin());
  return int64_t(ia - a.begin());
}

std::vector<uint64_t> block_hashes(std::span<const int32_t> tokens, int64_t block) {
  std::vector<uint64_t> out;
  uint64_t h = 0x6a09e667f3bcc908ULL;
  for (size_t i = 0; i + size_t(block) <= tokens.size(); i += size_t(block)) {
    for (size_t j = i; j < i + size_t(block); ++j) h = mix(h, uint32_t(tokens[j]));
    out.push_back(h);
  }
  return out;
}

PrefixCache::PrefixCache(InferenceEngine& engine, uint64_t max_bytes, int64_t bytes_per_token, int64_t bytes_per_entry)
    : engine_(engine),
      max_bytes_(max_bytes),
      bytes_per_token_(std::max<int64_t>(1, bytes_per_token)),
      bytes_per_entry_(std::max<int64_t>(0, bytes_per_entry)) {}

PrefixCache::~PrefixCache() { clear(); }

void PrefixCache::clear() {
  while (!entries_.empty()) erase(std::prev(entries_.end()));
}

void PrefixCache::erase(Lru::iterator it) {
  for (uint64_t h : it->block_hashes) {
    auto [lo, hi] = by_hash_.equal_range(h);
    for (auto j = lo; j != hi; ++j)
      if (j->second == it) {
        by_hash_.erase(j);
        break;
      }
  }
  bytes_ -= cost(it->tokens.size());
  engine_.free_sequence(it->seq);
  entries_.erase(it);
}

void PrefixCache::index(Lru::iterator it) {
  for (uint64_t h : it->block_hashes) by_hash_.emplace(h, it);
}

std::optional<PrefixCache::Hit> PrefixCache::acquire(std::span<const int32_t> prompt) {
  ++lookups_;
  if (entries_.empty() || int64_t(prompt.size()) <= kBlock) return std::nullopt;
  // Walk the prompt's chained block hashes while some entry shares them; the entries at the
  // deepest block are the candidates, and the token comparison settles collisions and extends
  // the match into the next, partial block.
  const auto hashes = block_hashes(prompt, kBlock);
  std::vector<Lru::iterator> candidates;
  for (uint64_t h : hashes) {
    auto [lo, hi] = by_hash_.equal_range(h);
    if (lo == hi) break;
    candidates.clear();
    for (auto j = lo; j != hi; ++j) candidates.push_back(j->second);
  }
  Lru::iterator best = entries_.end();
  int64_t best_n = 0;
  for (auto it : candidates) {
    const int64_t n = common_prefix(it->tokens, prompt);
    if (n > best_n) best_n = n, best = it;
  }
  best_n = std::min(best_n, int64_t(prompt.size()) - 1);
  if (best == entries_.end() || best_n < kBlock) return std::nullopt;
  entries_.splice(entries_.begin(), entries_, best);  // most recently used
  ++hits_;
  ++best->pins;
  const int64_t page = engine_.kv_page_rows(), shared = page > 1 ? best_n / page * page : 0;
  return Hit{engine_.fork_sequence(best->seq, best_n), best_n, best->id, shared};
}

void PrefixCache::unpin(uint64_t entry) {
  for (Entry& e : entries_)
    if (e.id == entry && e.pins > 0) --e.pins;
}

void PrefixCache::give_back(const Hit& hit) {
  engine_.free_sequence(hit.seq);
  unpin(hit.entry);
  --hits_;
}

void PrefixCache::shrink_to(uint64_t max) {
  for (auto it = entries_.end(); it != entries_.begin() && bytes_ > max;) {
    --it;  // least recently used first; pinned entries stay
    if (it->pins > 0) continue;
    auto gone = it;
    it = std::next(it);
    erase(gone);
    ++evictions_;
  }
}

void PrefixCache::release(SeqId seq, std::vector<int32_t> tokens, uint64_t room) {
  const uint64_t need = cost(tokens.size()), limit = std::min(max_bytes_, room);
  if (int64_t(tokens.size()) < kBlock || need > limit) {
    engine_.free_sequence(seq);
    return;
  }
  // An entry this one extends is replaced by it; one that extends this one already covers it.
  const auto hashes = block_hashes(tokens, kBlock);
  for (auto it = entries_.begin(); it != entries_.end();) {
    const int64_t n = common_prefix(it->tokens, tokens);
    if (n == int64_t(tokens.size())) {  // already cached, whole
      entries_.splice(entries_.begin(), entries_, it);
      engine_.free_sequence(seq);
      return;
    }
    auto next = std::next(it);
    if (n == int64_t(it->tokens.size()) && it->pins == 0) erase(it);  // a pinned one goes later
    it = next;
  }
  shrink_to(limit - need);  // need <= limit: checked above
  if (bytes_ + need > limit) {  // pinned entries hold the room
    engine_.free_sequence(seq);
    return;
  }
  // A running sequence may hold KV reserved past its end; the cached one keeps exactly its
  // tokens' pages (by reference where the engine shares pages, else copied), so that the bound
  // counts what is really held.
  const SeqId compact = engine_.fork_sequence(seq, int64_t(tokens.size()));
  engine_.free_sequence(seq);
  entries_.push_front(Entry{compact, std::move(tokens), hashes, next_id_++});
  bytes_ += need;
  index(entries_.begin());
}

}  // namespace moe::serve
