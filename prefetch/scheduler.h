// The prefetch scheduler: one thread that moves predicted experts into a tier ahead of need.
//
// Priorities: demand (the compute thread's own misses, never queued here) > the next MoE
// layer > layers further ahead; within a distance, higher predicted score first. Rules that
// keep a wrong guess from delaying a right one:
//   - while the tier is serving a demand read (demand(true)), no new prefetch batch starts;
//   - submit() replaces a layer's queued requests: guesses that a fresher prediction dropped
//     are cancelled before they reach the disk, and so are all queued requests for a layer
//     whose actual routing is known (cancel_layer);
//   - at most max_inflight_bytes are being read at once, so a demand read waits behind at
//     most that much speculative I/O;
//   - the tier itself caps unused prefetched bytes and never evicts pinned or wanted experts.
// The compute thread only takes the scheduler's lock briefly (submit/cancel); it never
// waits for a prefetch here.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "storage/expert_key.h"

namespace moe {

// Where prefetched experts go. TieredExperts implements it through TierTarget
// (prefetch_controller.h); tests use a fake whose latency they control.
class PrefetchTarget {
 public:
  virtual ~PrefetchTarget() = default;
  virtual bool present(ExpertKey k) const = 0;    // resident or loading: nothing to do
  virtual uint64_t bytes(ExpertKey k) const = 0;  // what loading it reads
  // Loads these speculatively in one batch, in order; returns how many it loaded (it may
  // stop early when the tier has no room). Called on the scheduler's thread.
  virtual size_t load(std::span<const ExpertKey> keys) = 0;
};

struct PrefetchRequest {
  ExpertKey key;
  int distance = 1;   // MoE layers ahead of the one that predicted it
  float score = 0.0f;  // the predictor's score (higher first)
};

struct SchedulerOptions {
  uint64_t max_inflight_bytes = 64ull << 20;
  size_t max_queue = 4096;  // oldest-priority requests beyond this are dropped
};

struct SchedulerStats {
  uint64_t submitted = 0;  // requests accepted into the queue
  uint64_t issued = 0;     // requests handed to the target
  uint64_t loaded = 0;     // experts the target actually loaded
  uint64_t cancelled = 0;  // queued requests dropped (replaced, layer routed, queue full, stop)
  uint64_t skipped = 0;    // requests for experts already present when their turn came
  uint64_t batches = 0;
  uint64_t issued_bytes = 0;
  uint64_t max_inflight_bytes = 0;  // the most bytes ever in flight at once
  uint64_t deferred_for_demand = 0;  // times a ready batch waited for a demand read to finish
};

class PrefetchScheduler {
 public:
  PrefetchScheduler(PrefetchTarget& target, SchedulerOptions o = {});
  ~PrefetchScheduler();  // drops the queue and waits for the batch in flight
  PrefetchScheduler(const PrefetchScheduler&) = delete;
  PrefetchScheduler& operator=(const PrefetchScheduler&) = delete;

  // Queues `reqs`, replacing every queued request of the layers they name.
  void submit(std::span<const PrefetchRequest> reqs);
  // The routing of `layer` is known: its queued requests are useless now.
  void cancel_layer(int layer);
  void cancel_all();
  // The tier reports demand reads (TieredExperts::set_demand_listener): no new batch starts
  // while one is in flight.
  void demand(bool active);
  // Waits until nothing is queued or in flight (benchmarks between variants, tests).
  void drain();
  SchedulerStats stats() const;
  void reset_stats();
  size_t queued() const;

 private:
  void run();
  bool ready() const;  // under mu_

  PrefetchTarget& target_;
  SchedulerOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable wake_, idle_;
  std::deque<PrefetchRequest> queue_;  // kept sorted: distance ascending, score descending
  int demand_ = 0;
  bool busy_ = false, stop_ = false;
  SchedulerStats stats_;
  std::thread worker_;
};

}  // namespace moe
