// The sequences of an engine: id -> its KV cache (KvCache on the CPU, gpu::GpuKv on the GPU),
// new ids counting up, and the checks both engines make on ids and prefix lengths.
#pragma once
#include <fmt/format.h>

#include <map>
#include <memory>
#include <stdexcept>

#include "runtime/engine_api.h"

namespace moe {

template <class Kv>
class SequenceTable {
 public:
  SeqId add(std::unique_ptr<Kv> kv) {
    seqs_[next_] = std::move(kv);
    return next_++;
  }
  // The sequence's cache; std::invalid_argument for an id never created or already freed.
  Kv& at(SeqId s) const {
    auto it = seqs_.find(s);
    if (it == seqs_.end()) throw std::invalid_argument(fmt::format("unknown sequence id {}", s));
    return *it->second;
  }
  // at(src), after checking that a prefix of n tokens exists (fork_sequence).
  Kv& prefix_of(SeqId src, int64_t n) const { return checked("fork_sequence", src, n); }
  // Keeps the first n tokens (truncate).
  void truncate(SeqId s, int64_t n) { checked("truncate", s, n).set_length(n); }
  void erase(SeqId s) {
    at(s);
    seqs_.erase(s);
  }
  size_t size() const { return seqs_.size(); }
  int64_t bytes() const {
    int64_t b = 0;
    for (const auto& [_, kv] : seqs_) b += kv->bytes();
    return b;
  }
  template <class F>
  void for_each(F&& f) const {
    for (const auto& [_, kv] : seqs_) f(*kv);
  }
  void clear() { seqs_.clear(); }

 private:
  Kv& checked(const char* call, SeqId s, int64_t n) const {
    Kv& kv = at(s);
    if (n < 0 || n > kv.length())
      throw std::invalid_argument(fmt::format("{}: {} exceeds sequence {} length {}", call, n, s, kv.length()));
    return kv;
  }

  std::map<SeqId, std::unique_ptr<Kv>> seqs_;
  SeqId next_ = 0;
};

}  // namespace moe
