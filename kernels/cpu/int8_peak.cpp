#include "kernels/cpu/int8_peak.h"

#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include "kernels/cpu/qmatmul.h"

namespace moe::cpu {

namespace {

std::atomic<int32_t> g_sink{0};  // keeps the sums, so the loop is not optimised away

// 16 independent chains: enough to cover vpdpbusd's latency at two per cycle. Returns the
// instructions run.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) int64_t dpbusd_loop(double seconds, int seed) {
  constexpr int C = 16;
  constexpr int64_t kBatch = 1 << 16;  // iterations between clock reads
  __m512i a[C];
  for (int i = 0; i < C; ++i) a[i] = _mm512_set1_epi32(i + seed);
  const __m512i b = _mm512_set1_epi8(char(seed | 1)), c = _mm512_set1_epi8(char(seed + 3));
  const auto t0 = std::chrono::steady_clock::now();
  int64_t n = 0;
  do {
    for (int64_t it = 0; it < kBatch; ++it) {
#pragma GCC unroll 16
      for (int i = 0; i < C; ++i) a[i] = _mm512_dpbusd_epi32(a[i], b, c);
    }
    n += kBatch * C;
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds);
  __m512i r = a[0];
  for (int i = 1; i < C; ++i) r = _mm512_add_epi32(r, a[i]);
  g_sink.fetch_add(_mm512_reduce_add_epi32(r), std::memory_order_relaxed);
  return n;
}

}  // namespace

double int8_peak_ops(ThreadPool& pool, double seconds) {
  if (!isa_supported(Isa::Avx512)) return 0.0;
  const int threads = pool.size();
  std::vector<int64_t> count(size_t(threads), 0);
  const auto t0 = std::chrono::steady_clock::now();
  pool.parallel_for(threads, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) count[size_t(i)] = dpbusd_loop(seconds, int(i));
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t total = 0;
  for (int64_t c : count) total += c;
  return double(total) * 64 * 2 / secs;
}

}  // namespace moe::cpu
