// The host RAM tier: experts read from a pack file (through an ExpertReader) into buffers the
// tier owns, under a byte budget, evicted by an EvictionPolicy when room is needed.
//
// acquire() of a resident expert is a hit: pin it, tell the policy, return its views. Of a
// missing one, a demand miss: take a buffer (evicting unpinned experts if the budget is full),
// read the record synchronously, verify its checksum the first time this process reads that
// record, decode, pin, return. release() unpins; the expert stays resident until evicted.
//
// Thread safe: one mutex guards the tables, taken briefly on the hit path; the disk read and
// decode of a miss run outside it, so hits of other threads proceed meanwhile. A second
// acquire of an expert being loaded waits for that load instead of reading it again. The
// load is split in reserve (locked) / read (unlocked) / publish (locked), which an async
// prefetch path can drive from its own thread; prefetch() is its synchronous form today.
#pragma once
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "storage/expert_catalog.h"
#include "storage/io/expert_reader.h"
#include "storage/tier/buffer_pool.h"
#include "storage/tier/eviction_policy.h"
#include "storage/tier/tier_stats.h"

namespace moe {

struct TierOptions {
  uint64_t budget_bytes = 0;  // bytes of expert buffers at most (see budget.h: parse_budget)
  // Experts one step pins at once (the router's top-k). The constructor throws when the budget
  // cannot hold that many of a layer's largest experts; <= 0 checks one expert.
  int top_k = 0;
  std::unique_ptr<EvictionPolicy> policy;  // null: LRU
  bool verify_checksums = true;            // verify each record on its first read in this process
};

class TieredExperts final : public ExpertSource {
 public:
  // Throws std::invalid_argument when the budget is too small (one line saying how to fix it)
  // and std::runtime_error when a record lies outside the reader's file or is not 4 KiB aligned.
  TieredExperts(std::shared_ptr<const ExpertCatalog> catalog, std::unique_ptr<ExpertReader> reader, TierOptions opts);
  ~TieredExperts() override;  // no acquire/prefetch may be running

  // Throws std::out_of_range for an unknown (layer, expert), std::runtime_error for a read or
  // checksum failure (naming file, layer and expert) and when every resident expert is pinned
  // and the budget has no room for this one.
  ExpertWeights acquire(int layer, int expert) override;
  // Hits are pinned at once; all misses are reserved, then read in ONE reader batch (several
  // reads in flight), then published. Experts another thread is loading are waited for.
  void acquire_many(int layer, std::span<const int> experts, ExpertWeights* out) override;
  // Throws std::logic_error when the expert is not acquired.
  void release(int layer, int expert) override;

  // Makes (layer, expert) resident without pinning it; synchronous until the prefetch issue
  // adds an async path. Returns false, instead of throwing, when the budget has no unpinned
  // room. Counted as prefetches, not as hits or misses.
  bool prefetch(int layer, int expert);

  bool resident(int layer, int expert) const;
  int pins(int layer, int expert) const;
  TierStats stats() const;
  void reset_stats();  // counters to zero, peaks to the current values

  const ExpertCatalog& catalog() const { return *catalog_; }
  const ExpertReader& reader() const { return *reader_; }
  uint64_t budget_bytes() const { return pool_.budget(); }

 private:
  enum class State : uint8_t { Absent, Loading, Resident };
  struct Slot {
    State state = State::Absent;
    bool verified = false;  // checksum checked once in this process
    int32_t pins = 0;
    AlignedBuffer buf;      // [expert_cache_bytes] decoded record; views point into it
    ExpertWeights views;
  };

  size_t index(int layer, int expert) const;  // throws std::out_of_range
  Slot& slot(ExpertKey k) { return slots_[base_[size_t(k.layer)] + size_t(k.expert)]; }
  // Loads an Absent slot; with `demand` pins it and throws when there is no room, else
  // returns false when there is no room. Unlocks `lk` during the read.
  bool load(std::unique_lock<std::mutex>& lk, int layer, int expert, bool demand);
  AlignedBuffer reserve(uint64_t bytes, int layer, int expert, bool demand);
  void evict(ExpertKey k);
  AlignedBuffer take_staging(uint64_t bytes);

  std::shared_ptr<const ExpertCatalog> catalog_;
  std::unique_ptr<ExpertReader> reader_;
  std::unique_ptr<EvictionPolicy> policy_;
  bool verify_;

  mutable std::mutex mu_;
  std::condition_variable loaded_;  // a Loading slot became Resident or Absent
  std::vector<size_t> base_;        // [n_layers + 1] first slot of each layer
  std::vector<Slot> slots_;
  BufferPool pool_;
  std::vector<AlignedBuffer> staging_;  // free read buffers for compressed records
  uint64_t staging_bytes_ = 0;
  TierStats stats_;  // counters only; the byte figures are filled in by stats()
};

}  // namespace moe
