// Runs produce(i) for i in [0, n) on several threads and consume(i, item) on the calling
// thread in index order, with at most `window` items in flight: parallel work (quantizing,
// compressing, generating) feeding one sequential writer with bounded memory.
#pragma once
#include <condition_variable>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

namespace moe::cli {

template <class T>
void run_ordered(size_t n, int threads, size_t window, const std::function<T(size_t)>& produce,
                 const std::function<void(size_t, T&)>& consume) {
  std::mutex mu;
  std::condition_variable cv;
  std::map<size_t, T> ready;
  size_t next_take = 0, next_write = 0;
  std::exception_ptr err;
  bool stop = false;
  auto worker = [&] {
    for (;;) {
      size_t i;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return stop || next_take >= n || next_take < next_write + window; });
        if (stop || next_take >= n) return;
        i = next_take++;
      }
      try {
        T item = produce(i);
        std::lock_guard<std::mutex> lk(mu);
        ready.emplace(i, std::move(item));
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        if (!err) err = std::current_exception();
        stop = true;
      }
      cv.notify_all();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t) pool.emplace_back(worker);
  while (next_write < n) {
    T item;
    {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait(lk, [&] { return stop || ready.count(next_write) > 0; });
      if (stop) break;
      item = std::move(ready[next_write]);
      ready.erase(next_write);
    }
    try {
      consume(next_write, item);
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu);
      if (!err) err = std::current_exception();
      stop = true;
    }
    {
      std::lock_guard<std::mutex> lk(mu);
      ++next_write;
      if (stop) next_write = n;
    }
    cv.notify_all();
  }
  {
    std::lock_guard<std::mutex> lk(mu);
    stop = true;
  }
  cv.notify_all();
  for (auto& t : pool) t.join();
  if (err) std::rethrow_exception(err);
}

}  // namespace moe::cli
