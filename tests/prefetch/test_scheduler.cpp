// The prefetch scheduler against a fake tier whose loads block until the test lets them
// finish: priorities, cancellation, the in-flight cap and demand hold-back are checked by
// what the fake saw, never by timing.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "prefetch/scheduler.h"

namespace moe {
namespace {

constexpr uint64_t kBytes = 100;  // every fake expert

class FakeTarget final : public PrefetchTarget {
 public:
  bool present(ExpertKey k) const override {
    std::lock_guard lk(mu_);
    return present_.count(k.packed()) > 0;
  }
  uint64_t bytes(ExpertKey) const override { return kBytes; }
  size_t load(std::span<const ExpertKey> keys) override {
    std::unique_lock lk(mu_);
    batches_.emplace_back(keys.begin(), keys.end());
    inflight_ += keys.size() * kBytes;
    max_inflight_ = std::max(max_inflight_, inflight_);
    changed_.notify_all();
    const size_t me = batches_.size();
    // Hang guard only: a correct scheduler is released long before this.
    if (!changed_.wait_for(lk, std::chrono::seconds(60), [&] { return released_ >= me; }))
      throw std::runtime_error("fake target: never released");
    inflight_ -= keys.size() * kBytes;
    for (const ExpertKey& k : keys) present_.insert(k.packed());
    if (fail_next_) {
      fail_next_ = false;
      throw std::runtime_error("injected read error");
    }
    return keys.size();
  }

  void make_present(ExpertKey k) {
    std::lock_guard lk(mu_);
    present_.insert(k.packed());
  }
  // Lets the next n loads (in call order) complete; 0 lets all current and future ones.
  void release(size_t n) {
    std::lock_guard lk(mu_);
    released_ = n ? released_ + n : size_t(1) << 40;
    changed_.notify_all();
  }
  void wait_batches(size_t n) {
    std::unique_lock lk(mu_);
    ASSERT_TRUE(changed_.wait_for(lk, std::chrono::seconds(60), [&] { return batches_.size() >= n; }))
        << "the scheduler issued " << batches_.size() << " batches, expected " << n;
  }
  std::vector<std::vector<ExpertKey>> batches() const {
    std::lock_guard lk(mu_);
    return batches_;
  }
  uint64_t max_inflight() const {
    std::lock_guard lk(mu_);
    return max_inflight_;
  }
  void fail_next() {
    std::lock_guard lk(mu_);
    fail_next_ = true;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::set<uint64_t> present_;
  std::vector<std::vector<ExpertKey>> batches_;
  size_t released_ = 0;
  uint64_t inflight_ = 0, max_inflight_ = 0;
  bool fail_next_ = false;
};

PrefetchRequest req(int layer, int expert, int distance, float score) { return {{layer, expert}, distance, score}; }

std::vector<ExpertKey> flat(const std::vector<std::vector<ExpertKey>>& b, size_t from = 0) {
  std::vector<ExpertKey> out;
  for (size_t i = from; i < b.size(); ++i) out.insert(out.end(), b[i].begin(), b[i].end());
  return out;
}

// Occupies the worker with one load the test controls, so later submissions queue up.
void block_worker(PrefetchScheduler& s, FakeTarget& t) {
  const PrefetchRequest r = req(99, 0, 1, 1.0f);
  s.submit({&r, 1});
  t.wait_batches(1);
}

TEST(Scheduler, NextLayerBeforeFurtherAheadAndHigherScoreFirst) {
  FakeTarget t;
  PrefetchScheduler s(t, {kBytes, 4096});  // one expert per batch: the order is visible
  block_worker(s, t);
  const std::vector<PrefetchRequest> r = {req(5, 1, 2, 0.9f), req(5, 2, 2, 0.8f), req(4, 3, 1, 0.1f), req(4, 7, 1, 0.6f)};
  s.submit(r);
  EXPECT_EQ(s.queued(), 4u);
  t.release(0);
  s.drain();
  const std::vector<ExpertKey> order = flat(t.batches(), 1);
  const std::vector<ExpertKey> want = {{4, 7}, {4, 3}, {5, 1}, {5, 2}};
  EXPECT_EQ(order, want);
  EXPECT_EQ(s.stats().loaded, 5u);
}

TEST(Scheduler, FresherPredictionReplacesALayersQueuedRequests) {
  FakeTarget t;
  PrefetchScheduler s(t, {kBytes, 4096});
  block_worker(s, t);
  const std::vector<PrefetchRequest> old = {req(4, 1, 2, 0.5f), req(4, 2, 2, 0.4f), req(4, 3, 2, 0.3f), req(6, 8, 1, 0.2f)};
  s.submit(old);
  const std::vector<PrefetchRequest> fresh = {req(4, 5, 1, 0.9f)};
  s.submit(fresh);
  t.release(0);
  s.drain();
  const std::vector<ExpertKey> want = {{4, 5}, {6, 8}};  // layer 4's older guesses never reached the tier
  EXPECT_EQ(flat(t.batches(), 1), want);
  EXPECT_EQ(s.stats().cancelled, 3u);
}

TEST(Scheduler, RoutedLayerCancelsItsQueuedRequests) {
  FakeTarget t;
  PrefetchScheduler s(t, {kBytes, 4096});
  block_worker(s, t);
  const std::vector<PrefetchRequest> r = {req(4, 1, 1, 0.5f), req(4, 2, 1, 0.4f), req(5, 3, 2, 0.3f)};
  s.submit(r);
  s.cancel_layer(4);  // layer 4's actual routing is known: demand takes over
  t.release(0);
  s.drain();
  const std::vector<ExpertKey> want = {{5, 3}};
  EXPECT_EQ(flat(t.batches(), 1), want);
  EXPECT_EQ(s.stats().cancelled, 2u);
}

TEST(Scheduler, BytesInFlightNeverExceedTheCap) {
  FakeTarget t;
  PrefetchScheduler s(t, {2 * kBytes + 50, 4096});
  std::vector<PrefetchRequest> r;
  for (int e = 0; e < 7; ++e) r.push_back(req(3, e, 1, 1.0f - 0.1f * float(e)));
  t.release(0);
  s.submit(r);
  s.drain();
  EXPECT_EQ(flat(t.batches()).size(), 7u);
  for (const auto& b : t.batches()) EXPECT_LE(b.size() * kBytes, 2 * kBytes + 50);
  EXPECT_LE(t.max_inflight(), 2 * kBytes + 50);
  EXPECT_LE(s.stats().max_inflight_bytes, 2 * kBytes + 50);
  EXPECT_GE(s.stats().batches, 4u);
}

TEST(Scheduler, DemandReadsHoldBackNewBatches) {
  FakeTarget t;
  t.release(0);
  PrefetchScheduler s(t, {kBytes, 4096});
  s.demand(true);  // the compute thread is reading a missed expert
  const std::vector<PrefetchRequest> r = {req(2, 1, 1, 0.5f), req(2, 2, 1, 0.4f)};
  s.submit(r);
  // While demand is active the worker cannot take anything: the queue is intact.
  EXPECT_EQ(s.queued(), 2u);
  EXPECT_TRUE(t.batches().empty());
  s.demand(false);
  s.drain();
  EXPECT_EQ(flat(t.batches()).size(), 2u);
}

TEST(Scheduler, PresentExpertsAreSkippedNotRead) {
  FakeTarget t;
  t.release(0);
  t.make_present({2, 1});
  PrefetchScheduler s(t, {4 * kBytes, 4096});
  const std::vector<PrefetchRequest> r = {req(2, 1, 1, 0.5f), req(2, 2, 1, 0.4f)};
  s.submit(r);
  s.drain();
  const std::vector<ExpertKey> want = {{2, 2}};
  EXPECT_EQ(flat(t.batches()), want);
  EXPECT_EQ(s.stats().skipped, 1u);
}

TEST(Scheduler, DuplicateRequestKeepsTheMoreUrgentOne) {
  FakeTarget t;
  PrefetchScheduler s(t, {kBytes, 4096});
  block_worker(s, t);
  const std::vector<PrefetchRequest> r = {req(7, 1, 2, 0.9f), req(7, 1, 1, 0.2f), req(8, 4, 1, 0.5f)};
  s.submit(r);
  EXPECT_EQ(s.queued(), 2u);
  t.release(0);
  s.drain();
  const std::vector<ExpertKey> want = {{8, 4}, {7, 1}};  // (7,1) kept at distance 1, lower score
  EXPECT_EQ(flat(t.batches(), 1), want);
}

TEST(Scheduler, AFailedLoadDoesNotStopTheScheduler) {
  FakeTarget t;
  t.release(0);
  t.fail_next();
  PrefetchScheduler s(t, {kBytes, 4096});
  const std::vector<PrefetchRequest> r = {req(1, 1, 1, 0.5f), req(1, 2, 1, 0.4f)};
  s.submit(r);
  s.drain();
  EXPECT_EQ(flat(t.batches()).size(), 2u);
  EXPECT_EQ(s.stats().loaded, 1u);  // the failed batch counts nothing
}

TEST(Scheduler, CancelAllThenDestroyWaitsForTheBatchInFlightOnly) {
  FakeTarget t;
  auto s = std::make_unique<PrefetchScheduler>(t, SchedulerOptions{kBytes, 4096});
  block_worker(*s, t);
  std::vector<PrefetchRequest> r;
  for (int e = 0; e < 50; ++e) r.push_back(req(3, e, 1, 0.5f));
  s->submit(r);
  s->cancel_all();
  EXPECT_EQ(s->queued(), 0u);
  EXPECT_EQ(s->stats().cancelled, 50u);
  std::thread releaser([&] { t.release(1); });  // the in-flight batch finishes while we destroy
  s.reset();
  releaser.join();
  EXPECT_EQ(t.batches().size(), 1u);
}

}  // namespace
}  // namespace moe
