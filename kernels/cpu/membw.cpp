#include "kernels/cpu/membw.h"

#include <atomic>
#include <chrono>
#include <cstdint>

namespace moe::cpu {

namespace {

__attribute__((target_clones("avx512f", "avx2", "default"))) double stream_sum(const double* p, int64_t n) {
  double acc[16] = {};  // independent sums: the loop vectorizes without -ffast-math
  for (int64_t i = 0; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += p[i + j];
  double s = 0;
  for (double a : acc) s += a;
  return s;
}

std::atomic<double> g_sink{0};  // keeps the sums, so the reads are not optimised away

}  // namespace

DramProbe::DramProbe(size_t bytes) : buf_(bytes / sizeof(double)) {
  for (size_t i = 0; i < buf_.size(); ++i) buf_[i] = double(i & 1023);  // touch every page
}

double DramProbe::pass_seconds(ThreadPool& pool) const {
  const int64_t n = int64_t(buf_.size()), chunks = 256;
  std::vector<double> part(chunks);
  const auto t0 = std::chrono::steady_clock::now();
  pool.parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) part[size_t(c)] = stream_sum(buf_.data() + c * (n / chunks), n / chunks);
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double s = 0;
  for (double p : part) s += p;
  g_sink.store(s, std::memory_order_relaxed);
  return secs;
}

double DramProbe::read_gbs(ThreadPool& pool) const { return double(bytes()) / pass_seconds(pool) / 1e9; }

}  // namespace moe::cpu
