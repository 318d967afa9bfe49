// A fixed set of worker threads for data-parallel loops. The calling thread takes part,
// so a pool of N threads runs N-1 workers.
//
// A decode step issues over a thousand short parallel sections (one per projection and
// expert), each a few tens of microseconds long. Waking a sleeping worker through a condition
// variable costs about as much on a VM, so workers spin on the job counter for a while after
// each section and only then sleep; the caller spins for the workers' chunks to finish.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moe {

class ThreadPool {
 public:
  // n_threads <= 0: physical cores. Throws std::runtime_error (with every thread it started
  // joined) when the system cannot create that many threads.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }
  // Calls fn(begin, end) over [0, n) split into contiguous chunks of at least `grain`. Under
  // 2 x grain the caller runs fn(0, n) alone, with no parallel section to pay for.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
  // The same, except that each thread takes one contiguous share of the first (1 - 1/tail) of
  // [0, n) and then pieces of the rest (about 1/(tail x 4 x threads) each, at least `grain`) as
  // it gets to them: a thread slowed down for a while (the other one's memory traffic, the VM)
  // no longer holds up the section. fn may be called several times per thread.
  void parallel_for_tail(int64_t n, int64_t grain, int tail, const std::function<void(int64_t, int64_t)>& fn);

  static int physical_cores();

 private:
  void run(int64_t n, int64_t grain, int tail, const std::function<void(int64_t, int64_t)>& fn);
  void run_tail();
  void worker(int index);
  void stop_workers();

  std::vector<std::thread> workers_;
  std::mutex mu_;  // guards sleeping only; jobs are published through generation_
  std::condition_variable start_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 0;
  int64_t job_piece_ = 0;               // 0: no shared tail; else its pieces' size
  int64_t job_end_ = 0;                 // the tail ends here (n)
  std::atomic<int64_t> job_next_{0};    // the shared tail's next unclaimed unit
  std::atomic<uint64_t> generation_{0};  // bumped (release) after job_* are written
  std::atomic<int> pending_{0};          // workers still on the current job
  std::atomic<int> sleepers_{0};         // workers blocked on start_cv_
  std::atomic<bool> stop_{false};
};

}  // namespace moe
