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
// acquire of an expert being loaded waits for that load instead of reading it again. Every
// load is reserve (locked) / one batched read (unlocked) / publish (locked), for demand
// misses on the compute thread and for prefetches on the prefetch scheduler's thread.
//
// Prefetched experts are "speculative" until first acquired: guesses may hold at most
// prefetch_share of the budget (experts the current step wants are no guess and may exceed it), and a prefetch never evicts a pinned expert or one the
// current step has announced it wants (set_wanted), so a wrong guess cannot push out a
// right one. Nor is a fresh guess evicted before its layer has run (unless nothing else can
// go): frequency-based policies would otherwise pick the newcomers first. Once its layer ran
// without it (set_wanted of that layer), it is an ordinary victim.
#pragma once
#include <condition_variable>
#include <exception>
#include <functional>
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
  double prefetch_share = 0.25;            // of the budget, for prefetched experts not yet used
  // Give every MoE layer an equal share of the budget (victims come from the layer that is
  // over its share) instead of one pool for all. trace-sim predicted 1-3 points more hits;
  // the real tier with LFU measured none (docs/trace-sim.md), so it is off by default.
  bool split_per_layer = false;
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

  // Loads the absent ones of `keys` speculatively (unpinned) in ONE reader batch, taking them
  // in order and stopping at the first that finds no room (see the class comment). Experts
  // resident or loading are skipped. Returns how many it loaded; counted as prefetches, not
  // as hits or misses. Throws like acquire() on read or checksum errors.
  size_t prefetch_many(std::span<const ExpertKey> keys);
  // prefetch_many of one expert, waiting for a load in flight; true when resident after.
  bool prefetch(int layer, int expert);

  // The experts the current step of `layer` will acquire: prefetches do not evict them.
  // Replaces the previous set (any layer).
  void set_wanted(int layer, std::span<const int32_t> experts);
  // Called with true just before demand reads go to the reader and with false after, on the
  // acquiring thread without the tier's lock: a prefetch scheduler holds back meanwhile.
  // Set before use; not thread safe against running acquires.
  void set_demand_listener(std::function<void(bool)> f) { demand_listener_ = std::move(f); }
  // Evicts every unpinned expert (benchmarks start each variant cold).
  void clear();
  // Page-locks every expert buffer: the resident and kept ones now, the others as they are
  // handed out (a GPU engine copying records straight from this tier); buffers stay pinned
  // until unmapped. Null stops new pinning.
  void set_pinner(std::shared_ptr<const HostPinner> p);

  bool resident(int layer, int expert) const override;
  bool present(int layer, int expert) const;  // resident or being loaded
  uint64_t read_bytes(int layer, int expert) const { return catalog_->record(layer, expert).padded_bytes; }
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
    bool verified = false;     // checksum checked once in this process
    bool speculative = false;  // prefetched, not acquired since
    bool wanted = false;       // in the current step's set_wanted
    bool stale = false;        // speculative, and its layer has since run without it (a wrong guess)
    uint32_t epoch = 0;        // stats epoch of its prefetch (used/wasted count only within one)
    int32_t pins = 0;
    AlignedBuffer buf;      // [expert_cache_bytes] decoded record; views point into it
    ExpertWeights views;
  };

  size_t index(int layer, int expert) const;  // throws std::out_of_range
  Slot& slot(ExpertKey k) { return slots_[base_[size_t(k.layer)] + size_t(k.expert)]; }
  // A load in progress: the slot is Loading and owns these buffers until publish or drop.
  struct Pending {
    ExpertKey key;
    AlignedBuffer buf, staging;
    bool verify = false;
  };
  // Under the lock: marks an Absent slot Loading with a buffer, evicting as needed. Demand
  // pins it and throws when there is no room; a prefetch returns false instead.
  bool reserve_load(ExpertKey k, bool demand, std::vector<Pending>& out);
  // Under the lock: undoes reserve_load (the slot back to Absent, its buffers returned).
  void drop(Pending& m);
  // Unlocks `lk`, reads all of `p` in one batch, publishing each record as it lands; relocks.
  // On a failure drops what did not land and rethrows (demand: unpinning what did).
  void load_batch(std::unique_lock<std::mutex>& lk, std::vector<Pending>& p, bool demand, ExpertWeights* out,
                  const std::vector<size_t>& out_index);
  // Under the lock: a landed record becomes Resident (demand: still pinned).
  void publish(Pending& m, const ExpertWeights& view, bool demand);
  AlignedBuffer reserve(uint64_t bytes, int layer, int expert, bool demand);
  void on_hit(Slot& s, ExpertKey k, TierLayerStats& ls);  // pin + policy + counters
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
  uint64_t spec_bytes_ = 0;  // buffers of speculative slots (resident or loading)
  uint64_t prefetch_loading_bytes_ = 0;  // buffers of prefetches being read (not evictable)
  uint64_t demand_reserve_ = 0;          // what one step's pins may need (top_k largest experts)
  uint32_t epoch_ = 0;                   // bumped by reset_stats
  std::vector<uint64_t> layer_bytes_;    // [n_layers] buffers held by each layer's slots
  uint64_t layer_quota_ = 0;             // split_per_layer: budget / MoE layers (0: one pool)
  double prefetch_share_;
  std::vector<size_t> wanted_;  // slots flagged wanted
  std::function<void(bool)> demand_listener_;
  TierStats stats_;  // counters only; the byte figures are filled in by stats()
};

}  // namespace moe
