#include "prefetch/scheduler.h"

#include <algorithm>

namespace moe {

namespace {

bool before(const PrefetchRequest& a, const PrefetchRequest& b) {
  return a.distance != b.distance ? a.distance < b.distance : a.score > b.score;
}

}  // namespace

PrefetchScheduler::PrefetchScheduler(PrefetchTarget& target, SchedulerOptions o)
    : target_(target), opts_(o), worker_([this] { run(); }) {}

PrefetchScheduler::~PrefetchScheduler() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    stats_.cancelled += queue_.size();
    queue_.clear();
  }
  wake_.notify_all();
  worker_.join();
}

void PrefetchScheduler::submit(std::span<const PrefetchRequest> reqs) {
  if (reqs.empty()) return;
  {
    std::lock_guard lk(mu_);
    // A fresher prediction for a layer replaces the older one's queued requests. The layers
    // named are few (one per lookahead), so test membership in that short list.
    std::vector<int32_t> layers;
    for (const PrefetchRequest& r : reqs)
      if (std::find(layers.begin(), layers.end(), r.key.layer) == layers.end()) layers.push_back(r.key.layer);
    const size_t before_n = queue_.size();
    std::erase_if(queue_, [&](const PrefetchRequest& q) {
      return std::find(layers.begin(), layers.end(), q.key.layer) != layers.end();
    });
    stats_.cancelled += before_n - queue_.size();
    for (const PrefetchRequest& r : reqs) {
      // One request per expert: keep the more urgent one.
      auto dup = std::find_if(queue_.begin(), queue_.end(), [&](const PrefetchRequest& q) { return q.key == r.key; });
      if (dup != queue_.end()) {
        if (!before(r, *dup)) continue;
        queue_.erase(dup);
        ++stats_.cancelled;
      }
      queue_.insert(std::upper_bound(queue_.begin(), queue_.end(), r, before), r);
      ++stats_.submitted;
    }
    while (queue_.size() > opts_.max_queue) {
      queue_.pop_back();
      ++stats_.cancelled;
    }
  }
  wake_.notify_one();
}

void PrefetchScheduler::cancel_layer(int layer) {
  std::lock_guard lk(mu_);
  const size_t n = queue_.size();
  std::erase_if(queue_, [&](const PrefetchRequest& q) { return q.key.layer == layer; });
  stats_.cancelled += n - queue_.size();
  if (queue_.empty() && !busy_) idle_.notify_all();
}

void PrefetchScheduler::cancel_all() {
  std::lock_guard lk(mu_);
  stats_.cancelled += queue_.size();
  queue_.clear();
  if (!busy_) idle_.notify_all();
}

void PrefetchScheduler::demand(bool active) {
  {
    std::lock_guard lk(mu_);
    demand_ += active ? 1 : -1;
    if (active && !queue_.empty()) ++stats_.deferred_for_demand;
  }
  if (!active) wake_.notify_one();
}

bool PrefetchScheduler::ready() const { return !queue_.empty() && demand_ == 0; }

void PrefetchScheduler::run() {
  std::unique_lock lk(mu_);
  std::vector<ExpertKey> batch;
  for (;;) {
    wake_.wait(lk, [&] { return stop_ || ready(); });
    if (stop_) return;
    // The most urgent requests, up to the in-flight cap (always at least one).
    batch.clear();
    uint64_t bytes = 0;
    while (!queue_.empty()) {
      const PrefetchRequest r = queue_.front();
      if (target_.present(r.key)) {
        queue_.pop_front();
        ++stats_.skipped;
        continue;
      }
      const uint64_t b = target_.bytes(r.key);
      if (!batch.empty() && bytes + b > opts_.max_inflight_bytes) break;
      queue_.pop_front();
      batch.push_back(r.key);
      bytes += b;
    }
    if (batch.empty()) {
      idle_.notify_all();
      continue;
    }
    busy_ = true;
    ++stats_.batches;
    stats_.issued += batch.size();
    stats_.issued_bytes += bytes;
    stats_.max_inflight_bytes = std::max(stats_.max_inflight_bytes, bytes);
    lk.unlock();
    size_t loaded = 0;
    try {
      loaded = target_.load(batch);
    } catch (...) {
      // A failed speculative read is not fatal: the demand path will read (and report) it.
    }
    lk.lock();
    busy_ = false;
    stats_.loaded += loaded;
    if (queue_.empty()) idle_.notify_all();
  }
}

void PrefetchScheduler::drain() {
  std::unique_lock lk(mu_);
  idle_.wait(lk, [&] { return (queue_.empty() || demand_ > 0) && !busy_; });
}

SchedulerStats PrefetchScheduler::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

void PrefetchScheduler::reset_stats() {
  std::lock_guard lk(mu_);
  stats_ = {};
}

size_t PrefetchScheduler::queued() const {
  std::lock_guard lk(mu_);
  return queue_.size();
}

}  // namespace moe
