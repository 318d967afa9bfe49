// The VRAM tier: a fixed pool of device slots for experts, filled from host memory (the RAM
// tier, through HostExpertSource) by copies on one copy stream, under a byte budget.
//
// Slots are all the size of the largest expert, allocated once (one device allocation) at
// construction, so the budget is never exceeded and nothing is allocated on the hot path.
// An expert is Absent, Queued (a prefetch waiting for the copy engine; it holds a slot),
// Copying (its copy is on the engine) or Resident.
//
// acquire() pins the expert and never waits for its copy: it returns the slot's address and
// the copy's ticket, and the caller waits on that ticket only when it computes that expert
// (wait(); on a GPU the compute stream would wait on the copy's event instead). A miss copies
// at once, ahead of every queued prefetch: prefetches go to the copy engine at most
// max_prefetch_inflight_bytes at a time (the engine is FIFO), so a demand copy waits behind
// at most that much speculative traffic.
//
// Eviction asks the EvictionPolicy for a Resident, unpinned victim; pinned, queued and copying
// experts are never chosen. A demand miss that finds no victim cancels a queued prefetch,
// else waits for a copy in flight, else throws one line (every slot pinned by this step).
//
// When every expert fits (the slots cover all experts), the constructor copies everything in,
// and acquire/release become a table lookup: no lock, no pins, no policy, no counters.
//
// Threads: acquire / wait / release from one compute thread; prefetch / poll / present /
// copy_bytes from any (a PrefetchScheduler through an adapter). One mutex over the tables;
// the host blocks on the device (wait) with the lock released. Known limit: the memcpy into
// staging (and HostExpertSource::acquire, a disk read on a RAM miss) runs under the lock.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "storage/tier/eviction_policy.h"
#include "storage/vram/device_api.h"
#include "storage/vram/host_expert_source.h"
#include "storage/vram/staging_pool.h"

namespace moe {

struct VramOptions {
  uint64_t budget_bytes = 0;   // device bytes for expert slots (see placement.h: parse_vram_budget);
                               // more than every expert needs gives one slot per expert
  uint64_t staging_bytes = 0;  // pinned staging buffers; 0: four slots' worth (none when the
                               // host source's records are pinned: copies read them directly)
  // Experts one step pins at once (the router's top-k): the constructor throws when fewer
  // slots fit the budget. <= 0 checks one.
  int top_k = 0;
  std::unique_ptr<EvictionPolicy> policy;  // null: LRU
  // Prefetch bytes handed to the copy engine at once; 0: one slot. A demand copy queues
  // behind at most this much.
  uint64_t max_prefetch_inflight_bytes = 0;
  // Of the slots, how many may hold prefetched experts not used yet: a wrong guess cannot
  // fill the pool.
  double prefetch_share = 0.5;
};

// An acquired expert on the device.
struct VramExpert {
  DeviceAddr addr = 0;    // [bytes] in its slot
  uint64_t bytes = 0;
  CopyTicket ticket = 0;  // 0: already resident; else compute must wait on it first
  int32_t slot = -1;
};

struct VramStats {
  uint64_t hits = 0;            // acquire of a resident expert
  uint64_t inflight_hits = 0;   // acquire of an expert being prefetched (queued or copying)
  uint64_t misses = 0;          // acquire of an absent expert: a demand copy
  uint64_t demand_copies = 0;   // copies started by acquire (misses + promoted queued prefetches)
  uint64_t prefetch_copies = 0;
  uint64_t bytes_copied = 0;    // host->device, both kinds
  uint64_t prefetch_used = 0;   // prefetched experts acquired before eviction
  uint64_t prefetch_wasted = 0; // prefetched experts evicted or cancelled unused
  uint64_t evictions = 0;
  uint64_t waits = 0;           // wait() that found the copy not done (compute stalled)
  uint64_t staging_waits = 0;   // demand copies that waited for a staging buffer
  uint64_t slot_waits = 0;      // demand misses that waited for a copy to free a slot
  uint64_t max_prefetch_inflight_bytes = 0;  // the most prefetch bytes on the engine at once
};

class VramTier {
 public:
  // Allocates the slots (one device allocation) and the staging buffers. Throws
  // std::invalid_argument when the budget holds fewer than top_k slots (one line: the budget,
  // the slot size, what it needs, which flag), std::runtime_error when the device cannot
  // allocate. When every expert fits, copies all of them in before returning.
  VramTier(HostExpertSource& host, DeviceMemory& mem, CopyEngine& copy, VramOptions o);
  ~VramTier();  // waits for copies in flight (they read staging buffers), frees everything
  VramTier(const VramTier&) = delete;
  VramTier& operator=(const VramTier&) = delete;

  // Pins (layer, expert) and returns where it is; a miss starts its copy ahead of queued
  // prefetches. Never waits for the copy, only (rarely, counted) for a staging buffer or a
  // slot held by a copy in flight. Throws std::out_of_range for an unknown expert and
  // std::runtime_error when every slot is pinned.
  VramExpert acquire(int layer, int expert);
  // Blocks until x's copy is done; counts a wait when it was not. Cheap for a resident x.
  void wait(const VramExpert& x);
  bool ready(const VramExpert& x);
  // Throws std::logic_error when the expert is not acquired.
  void release(int layer, int expert);

  // Queues absent experts of `keys` as prefetches (unpinned), in order, stopping at the first
  // that finds no slot; hands what the in-flight cap allows to the copy engine. Returns how
  // many it queued. Never waits.
  size_t prefetch(std::span<const ExpertKey> keys);
  // Retires finished copies and hands queued prefetches to the copy engine. Every call above
  // does this too; a caller with nothing else to do between steps may call it.
  void poll();
  // Waits for every copy queued or in flight (tests, benchmarks).
  void drain();

  bool present(ExpertKey k) const;   // queued, copying or resident
  bool resident(ExpertKey k) const;  // copy done (as last observed)
  int pins(ExpertKey k) const;
  uint64_t copy_bytes(ExpertKey k) const { return host_.bytes(k); }
  // Bytes the copy engine must still move before k is on the device: 0 when resident; its
  // own bytes plus every unfinished copy ahead of it otherwise (an upper bound for one in
  // flight: the engine does not report partial progress). The miss cost model's input.
  uint64_t pending_copy_bytes(ExpertKey k) const;

  bool fully_resident() const { return all_resident_; }
  size_t slots() const { return n_slots_; }
  uint64_t slot_bytes() const { return slot_bytes_; }
  uint64_t device_bytes() const { return uint64_t(n_slots_) * slot_bytes_; }
  size_t staging_buffers() const { return staging_ ? staging_->size() : 0; }
  bool direct() const { return !staging_; }  // copies read the host source's pinned records
  VramStats stats() const;
  void reset_stats();

 private:
  enum class State : uint8_t { Absent, Queued, Copying, Resident };
  struct Entry {
    State state = State::Absent;
    bool speculative = false;  // prefetched, not acquired since
    int32_t pins = 0;
    int32_t slot = -1;
    CopyTicket ticket = 0;  // while Copying
  };
  struct InFlight {
    ExpertKey key;
    CopyTicket ticket;
    int staging;  // -1: a direct copy, the host record stays acquired until it is done
    uint64_t bytes;
    bool prefetch;
  };

  size_t index(int layer, int expert) const;  // throws std::out_of_range
  Entry& entry(ExpertKey k) { return entries_[base_[size_t(k.layer)] + size_t(k.expert)]; }
  const Entry& entry(ExpertKey k) const { return entries_[base_[size_t(k.layer)] + size_t(k.expert)]; }
  DeviceAddr slot_addr(int slot) const { return base_addr_ + uint64_t(slot) * slot_bytes_; }

  // All under the lock (lk is mu_'s).
  void pump();                             // retire finished copies, submit queued prefetches
  void retire(size_t i);                   // inflight_[i] is done
  void wait_oldest(std::unique_lock<std::mutex>& lk, bool (*pred)(const InFlight&), uint64_t& counter);
  CopyTicket submit(ExpertKey k, int staging, bool prefetch);  // staging -> copy engine
  int take_demand_staging(std::unique_lock<std::mutex>& lk);
  int take_slot(std::unique_lock<std::mutex>* demand_lk);      // demand when lk given; -1: no room
  void evict_slot(ExpertKey victim);
  void load_all();

  HostExpertSource& host_;
  DeviceMemory& mem_;
  CopyEngine& copy_;
  std::unique_ptr<EvictionPolicy> policy_;
  uint64_t slot_bytes_ = 0;
  size_t n_slots_ = 0;
  DeviceAddr base_addr_ = 0;
  uint64_t prefetch_cap_ = 0;
  size_t spec_cap_ = 0;  // slots prefetched experts not yet used may hold
  bool all_resident_ = false;
  size_t direct_depth_ = 1;  // load_all with direct copies: host records acquired at once

  mutable std::mutex mu_;
  std::vector<size_t> base_;  // [n_layers + 1] first entry of each layer
  std::vector<Entry> entries_;
  std::vector<ExpertKey> slot_owner_;  // [n_slots]; layer -1: free
  std::vector<int> free_slots_;
  std::deque<ExpertKey> queue_;    // Queued prefetches, oldest first
  std::deque<InFlight> inflight_;  // on the copy engine, enqueue order
  std::unique_ptr<StagingPool> staging_;  // null: direct copies from pinned host records
  uint64_t prefetch_inflight_bytes_ = 0;
  size_t spec_slots_ = 0;  // slots held by speculative entries
  VramStats stats_;
};

}  // namespace moe
