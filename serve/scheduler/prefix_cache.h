// Prefix reuse across requests: finished sequences are kept (their KV stays in the engine) and
// indexed by hashed blocks of their tokens; a new prompt forks the cached sequence sharing its
// longest prefix instead of recomputing it. Bounded in KV bytes, least recently used evicted.
// Agent loops resend the same system prompt, tools and history each turn: turn n+1 extends
// turn n, whose entry it then replaces, so one conversation holds one entry. Where the engine
// shares KV pages between a fork and its source (kv_page_rows() > 1), a hit's fork holds the
// entry's whole pages by reference: the entry is then pinned (never evicted) until the request
// that forked it lets go (unpin), so that its pages stay counted here.
#pragma once
#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "runtime/engine_api.h"

namespace moe::serve {

class PrefixCache {
 public:
  static constexpr int64_t kBlock = 16;  // tokens per hashed block: shorter shared prefixes are not reused

  // bytes_per_token: the engine's KV bytes per cached token; bytes_per_entry: what each cached
  // sequence costs besides (a recurrent model's state), for the accounting of the bound.
  PrefixCache(InferenceEngine& engine, uint64_t max_bytes, int64_t bytes_per_token, int64_t bytes_per_entry = 0);
  ~PrefixCache();  // frees every cached sequence
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  struct Hit {
    SeqId seq;            // a new sequence holding the prompt's first `tokens` tokens
    int64_t tokens;       // < prompt.size(): at least one token is left to compute
    uint64_t entry = 0;   // the entry it came from, pinned until unpin(entry)
    int64_t shared = 0;   // of the tokens, those whose KV rows the fork shares with the entry
  };
  std::optional<Hit> acquire(std::span<const int32_t> prompt);
  // The request that forked from `entry` is done with it (an entry since replaced: nothing).
  void unpin(uint64_t entry);
  // Undoes a hit of acquire() for a request that must wait or compute after all: frees the fork,
  // unpins, and takes the hit out of the counts (the lookup stays: retract_lookup).
  void give_back(const Hit& hit);
  // Takes the last acquire() out of the lookup count (a request that waits looks again later).
  void retract_lookup() { --lookups_; }
  // Takes a finished sequence whose KV holds exactly `tokens`: keeps it, or frees it when it
  // does not fit or adds nothing to what is cached. `room`: a lower bound than the cache's own for
  // this call (what a KV budget shared with running sequences leaves), evicting to stay within it.
  void release(SeqId seq, std::vector<int32_t> tokens, uint64_t room = UINT64_MAX);
  // Evicts least recently used entries until at most `max` bytes stay cached (a waiting request
  // needs the memory, or a new entry does); pinned entries stay, so more may remain.
  void shrink_to(uint64_t max);
  void clear();

  uint64_t bytes() const { return bytes_; }
  size_t entries() const { return entries_.size(); }
  int64_t hits() const { return hits_; }
  int64_t lookups() const { return lookups_; }
  int64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    SeqId seq;
    std::vector<int32_t> tokens;
    std::vector<uint64_t> block_hashes;  // chained: hash i covers tokens [0, (i+1) * kBlock)
    uint64_t id = 0;
    int pins = 0;  // running requests sharing its pages
  };
  using Lru = std::list<Entry>;  // most recently used first
  void erase(Lru::iterator it);
  void index(Lru::iterator it);

  InferenceEngine& engine_;
  uint64_t max_bytes_;
  int64_t bytes_per_token_;
  int64_t bytes_per_entry_;
  uint64_t cost(size_t tokens) const {  // an entry holds whole KV pages
    return uint64_t(engine_.kv_rows(int64_t(tokens))) * uint64_t(bytes_per_token_) + uint64_t(bytes_per_entry_);
  }
  uint64_t next_id_ = 1;
  uint64_t bytes_ = 0;
  Lru entries_;
  std::unordered_multimap<uint64_t, Lru::iterator> by_hash_;
  int64_t hits_ = 0, lookups_ = 0, evictions_ = 0;
};

// Chained block hashes of `tokens` (one per whole block).
std::vector<uint64_t> block_hashes(std::span<const int32_t> tokens, int64_t block);
// How many leading tokens a and b have in common.
int64_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b);

}  // namespace moe::serve
