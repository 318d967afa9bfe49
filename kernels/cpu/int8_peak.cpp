#include "kernels/cpu/int8_peak.h"

#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include "kernels/cpu/amx.h"
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

// The tile unit: 4 independent C tiles, each TDPBSSD 16 x 16 x 64 multiply-adds from register
// tiles. Returns the instructions run.
__attribute__((target("amx-tile,amx-int8"))) int64_t dpbssd_tile_loop(double seconds) {
  struct alignas(64) {
    uint8_t palette = 1, start_row = 0, reserved[14] = {};
    uint16_t colsb[16] = {64, 64, 64, 64, 64, 64};
    uint8_t rows[16] = {16, 16, 16, 16, 16, 16};
  } cfg;
  _tile_loadconfig(&cfg);
  alignas(64) int8_t src[16 * 64];
  for (int i = 0; i < 16 * 64; ++i) src[i] = int8_t(i * 7);
  _tile_loadd(4, src, 64);
  _tile_loadd(5, src, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  constexpr int64_t kBatch = 1 << 12;
  const auto t0 = std::chrono::steady_clock::now();
  int64_t n = 0;
  do {
    for (int64_t it = 0; it < kBatch; ++it) {
      _tile_dpbssd(0, 4, 5);
      _tile_dpbssd(1, 4, 5);
      _tile_dpbssd(2, 4, 5);
      _tile_dpbssd(3, 4, 5);
    }
    n += kBatch * 4;
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds);
  alignas(64) int32_t out[256];
  _tile_stored(0, out, 64);
  g_sink.fetch_add(out[0], std::memory_order_relaxed);
  _tile_release();
  return n;
}

template <class Loop>
double ops_per_second(ThreadPool& pool, int64_t ops_each, Loop&& loop) {
  const int threads = pool.size();
  std::vector<int64_t> count(size_t(threads), 0);
  const auto t0 = std::chrono::steady_clock::now();
  pool.parallel_for(threads, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) count[size_t(i)] = loop(int(i));
  });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t total = 0;
  for (int64_t c : count) total += c;
  return double(total) * double(ops_each) / secs;
}

}  // namespace

double int8_peak_ops(ThreadPool& pool, double seconds) {
  if (!isa_supported(Isa::Avx512)) return 0.0;
  return ops_per_second(pool, 64 * 2, [&](int seed) { return dpbusd_loop(seconds, seed); });
}

double amx_int8_peak_ops(ThreadPool& pool, double seconds) {
  if (!amx_supported()) return 0.0;
  return ops_per_second(pool, 16 * 16 * 64 * 2, [&](int) { return dpbssd_tile_loop(seconds); });
}

}  // namespace moe::cpu
