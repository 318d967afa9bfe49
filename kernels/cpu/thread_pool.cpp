#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

namespace moe {

namespace {
// How long an idle worker keeps spinning before it sleeps: long enough to span the gap
// between two sections of a forward pass (norms, routing, copies), short enough that an idle
// pool costs nothing measurable.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

int ThreadPool::physical_cores() {
  // Count distinct (physical id, core id) pairs; hyperthreads share a core and its FMA units.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<int, int>> cores;
  std::string line;
  int phys = 0;
  while (std::getline(in, line)) {
    if (line.rfind("physical id", 0) == 0) phys = std::stoi(line.substr(line.find(':') + 1));
    if (line.rfind("core id", 0) == 0) cores.insert({phys, std::stoi(line.substr(line.find(':') + 1))});
  }
  const int logical = int(std::thread::hardware_concurrency());
  if (cores.empty()) return std::max(1, logical);
  return std::max(1, std::min<int>(int(cores.size()), logical > 0 ? logical : int(cores.size())));
}

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = physical_cores();
  try {
    workers_.reserve(size_t(n_threads - 1));
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker(i); });
  } catch (const std::exception& e) {
    // Out of threads or memory for their stacks: the destructor will not run, so stop and
    // join the workers already started here (destroying them joinable would terminate).
    stop_workers();
    throw std::runtime_error("cannot start " + std::to_string(n_threads) + " CPU threads (started " +
                             std::to_string(workers_.size() + 1) + "): " + e.what() +
                             "; use fewer --threads or raise the process/memory limits");
  }
}

ThreadPool::~ThreadPool() { stop_workers(); }

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin first (checking the clock every 64 pauses), then sleep until the next job.
    bool fresh = false;
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (int i = 1; !fresh; ++i) {
      if (stop_.load(std::memory_order_relaxed)) return;
      fresh = generation_.load(std::memory_order_acquire) != seen;
      if (fresh || (i % 64 == 0 && std::chrono::steady_clock::now() > until)) break;
      cpu_relax();
    }
    if (!fresh) {
      std::unique_lock<std::mutex> lk(mu_);
      sleepers_.fetch_add(1);  // seq_cst: pairs with the caller's bump-then-read in parallel_for
      start_cv_.wait(lk, [&] { return stop_.load() || generation_.load() != seen; });
      sleepers_.fetch_sub(1);
      if (stop_.load()) return;
    }
    seen = generation_.load(std::memory_order_acquire);
    const int64_t n = job_n_, chunk = job_chunk_;
    const int64_t b = std::min(n, index * chunk), e = std::min(n, b + chunk);
    if (b < e) (*job_)(b, e);
    run_tail();
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run_tail() {
  // Every thread claims pieces until none is left; the caller waits for the workers after its
  // own, so job_* stay valid meanwhile.
  const int64_t piece = job_piece_;
  if (piece == 0) return;
  for (;;) {
    const int64_t b = job_next_.fetch_add(piece, std::memory_order_relaxed);
    if (b >= job_end_) return;
    (*job_)(b, std::min(job_end_, b + piece));
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  run(n, grain, 0, fn);
}

void ThreadPool::parallel_for_tail(int64_t n, int64_t grain, int tail,
                                   const std::function<void(int64_t, int64_t)>& fn) {
  run(n, grain, tail, fn);
}

void ThreadPool::run(int64_t n, int64_t grain, int tail, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t threads = std::min<int64_t>(size(), std::max<int64_t>(1, n / grain));
  if (threads <= 1) {
    fn(0, n);
    return;
  }
  int64_t shared = 0, piece = 0;  // the tail's length, and its pieces'
  if (tail > 1) {
    piece = std::max(grain, n / (int64_t(tail) * 4 * size()));
    shared = std::min(n, std::max(piece, n / tail));
    if ((n - shared) / size() < grain) shared = piece = 0;  // too short to share: plain shares
  }
  const int64_t chunk = (n - shared + size() - 1) / size();
  job_ = &fn;
  job_n_ = n - shared;
  job_chunk_ = chunk;
  job_piece_ = shared > 0 ? piece : 0;
  job_end_ = n;
  job_next_.store(n - shared, std::memory_order_relaxed);
  pending_.store(int(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);  // seq_cst: publishes job_* and orders before reading sleepers_
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lk(mu_);
    start_cv_.notify_all();
  }
  std::exception_ptr err;
  try {
    if (chunk > 0) fn(0, std::min(job_n_, chunk));
    run_tail();
  } catch (...) {
    err = std::current_exception();  // the workers still use fn: wait for them first
  }
  // The workers' chunks are as long as ours: spin, yielding now and then in case a worker was
  // descheduled (more threads than free cores).
  for (int i = 1; pending_.load(std::memory_order_acquire) != 0; ++i) {
    if (i % 256 == 0) std::this_thread::yield();
    else cpu_relax();
  }
  if (err) std::rethrow_exception(err);
}

}  // namespace moe
