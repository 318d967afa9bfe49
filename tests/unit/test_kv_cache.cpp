// KvCache in each KV dtype: rows round as the dtype rounds, read back whole or by column block,
// and prefixes keep them; pages are shared by reference and copied only when written.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/cpu/kv_convert.h"
#include "runtime/kv_cache.h"

using namespace moe;

namespace {

// Largest relative rounding error of each type (half an ulp), for normal values.
double rel_eps(DType t) {
  switch (t) {
    case DType::BF16: return std::ldexp(1.0, -8);
    case DType::F16: return std::ldexp(1.0, -11);
    case DType::F8E4M3: return std::ldexp(1.0, -4);
    default: return 0.0;
  }
}

class KvDtypeTest : public ::testing::TestWithParam<DType> {};

TEST_P(KvDtypeTest, RowsRoundTripWithinTheTypesRounding) {
  const DType t = GetParam();
  const int64_t W = 24, V = 16, N = 9;
  KvCache kv(2, W, V, {}, 0, t);
  kv.reserve(N);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.05f, 8.0f);
  std::vector<float> ks(size_t(N * W)), vs(size_t(N * V));
  for (float& x : ks) x = u(rng) * (rng() % 2 ? 1.0f : -1.0f);
  for (float& x : vs) x = u(rng);
  for (int64_t p = 0; p < N; ++p) kv.put(1, p, &ks[size_t(p * W)], &vs[size_t(p * V)]);
  kv.set_length(N);

  std::vector<float> kb(size_t(N * W)), vb(size_t(N * V));
  kv.read_k(1, 0, N, 0, W, kb.data());
  kv.read_v(1, 0, N, 0, V, vb.data());
  for (size_t i = 0; i < ks.size(); ++i) EXPECT_LE(std::abs(kb[i] - ks[i]), rel_eps(t) * std::abs(ks[i])) << i;
  for (size_t i = 0; i < vs.size(); ++i) EXPECT_LE(std::abs(vb[i] - vs[i]), rel_eps(t) * std::abs(vs[i])) << i;
  if (t == DType::F32) {
    EXPECT_EQ(kb, ks);
    EXPECT_EQ(kv.k_rows(1).row<float>(0)[5], ks[5]);  // read in place
    EXPECT_EQ(kv.k_rows(1, 3).row<float>(2)[0], ks[size_t(2 * W + 3)]);
  } else {
    EXPECT_NE(kb, ks);  // it did round
  }
  // A block of rows and columns reads the same values as the whole.
  std::vector<float> blk(size_t(3 * 8));
  kv.read_k(1, 4, 3, 8, 8, blk.data());
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 8; ++c) EXPECT_EQ(blk[size_t(r * 8 + c)], kb[size_t((4 + r) * W + 8 + c)]);
  // A prefix keeps the dtype and the stored bits.
  const KvCache pre = kv.prefix(5);
  EXPECT_EQ(pre.dtype(), t);
  std::vector<float> pb(size_t(5 * W));
  pre.read_k(1, 0, 5, 0, W, pb.data());
  for (size_t i = 0; i < pb.size(); ++i) EXPECT_EQ(pb[i], kb[i]);
  // Memory: two layers of one page of (W + V) elements of the type per row; the prefix shares
  // that page, so the pool holds it once.
  const int64_t page = KvCache::kPageRows * (W + V) * dtype_size(t);
  EXPECT_EQ(kv.bytes() - kv.private_bytes(), 2 * page);
  EXPECT_EQ(kv.pool()->bytes(), 2 * page);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, KvDtypeTest, ::testing::Values(DType::F32, DType::BF16, DType::F16, DType::F8E4M3),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(KvCache, RefusesQuantizedDtypes) {
  EXPECT_THROW(KvCache(1, 8, 8, {}, 0, DType::Q4), std::invalid_argument);
  EXPECT_THROW(KvCache(1, 8, 8, {}, 0, DType::I8), std::invalid_argument);
}

// e4m3 saturates instead of overflowing to NaN: a key of 1000 is stored as 448.
TEST(KvCache, Fp8SaturatesLargeValues) {
  const float x[2] = {1000.0f, -1000.0f};
  uint8_t b[2];
  cpu::kv_narrow(DType::F8E4M3, x, 2, b);
  float y[2];
  cpu::kv_widen(DType::F8E4M3, b, 2, 0, 1, 0, 2, y);
  EXPECT_EQ(y[0], 448.0f);
  EXPECT_EQ(y[1], -448.0f);
}

// Rows far apart in a cache's life: pages are filled in order, a prefix shares whole pages, and
// a write into a shared page copies it first, so neither cache sees the other's later rows.
TEST(KvCache, PrefixesSharePagesAndCopyOnlyWhatTheyWrite) {
  const int64_t W = 8, P = KvCache::kPageRows, N = 3 * P + 5;
  KvCache a(1, W, W);
  a.reserve(N);
  const auto row = [&](float tag, int64_t p) {
    std::vector<float> r(static_cast<size_t>(W));
    for (int64_t c = 0; c < W; ++c) r[size_t(c)] = tag * 1000 + float(p * W + c);
    return r;
  };
  a.make_writable(0, N);
  for (int64_t p = 0; p < N; ++p) a.put(0, p, row(1, p).data(), row(2, p).data());
  a.set_length(N);
  const int64_t page = 2 * P * W * 4;  // K and V
  EXPECT_EQ(a.pool()->bytes(), 4 * page);

  // A prefix ending inside page 2 shares pages 0-2 and allocates nothing.
  const int64_t n = 2 * P + 3;
  KvCache b = a.prefix(n);
  EXPECT_EQ(b.pool(), a.pool());
  EXPECT_EQ(a.pool()->bytes(), 4 * page);
  EXPECT_EQ(b.k_rows(0).row<float>(n - 1), a.k_rows(0).row<float>(n - 1));  // the same memory

  // b writes past n: only the page it writes into is copied.
  b.reserve(n + 1);
  b.make_writable(n, n + 1);
  b.put(0, n, row(3, n).data(), row(4, n).data());
  b.set_length(n + 1);
  EXPECT_EQ(a.pool()->bytes(), 5 * page);
  EXPECT_EQ(b.k_rows(0).row<float>(0), a.k_rows(0).row<float>(0));        // page 0 still shared
  EXPECT_NE(b.k_rows(0).row<float>(n - 1), a.k_rows(0).row<float>(n - 1));  // page 2 copied
  std::vector<float> got(static_cast<size_t>(W));
  a.read_k(0, n, 1, 0, W, got.data());
  EXPECT_EQ(got, row(1, n));  // a's row n is unchanged
  b.read_v(0, n, 1, 0, W, got.data());
  EXPECT_EQ(got, row(4, n));
  for (int64_t p = 0; p < n; ++p) {  // b's prefix is a's
    b.read_k(0, p, 1, 0, W, got.data());
    ASSERT_EQ(got, row(1, p)) << p;
  }
  // A page nobody else holds is written in place.
  b.make_writable(n, n + 1);
  EXPECT_EQ(a.pool()->bytes(), 5 * page);

  // Truncating lets whole pages go; freeing the last holder returns them.
  a.set_length(P);
  EXPECT_EQ(a.pool()->bytes(), 3 * page);  // a lets pages 1-3 go; b still holds page 1
  {
    KvCache gone = std::move(b);
  }
  EXPECT_EQ(a.pool()->bytes(), 1 * page);
}

// MLA-shaped caches (no V) page their K rows alone.
TEST(KvCache, KeysOnlyCachesPageTheirKeys) {
  KvCache kv(2, 12, 0);
  kv.reserve(KvCache::kPageRows + 1);
  EXPECT_EQ(kv.pool()->bytes(), 2 * 2 * KvCache::kPageRows * 12 * 4);
  const std::vector<float> r(12, 2.5f);
  kv.make_writable(0, KvCache::kPageRows + 1);
  kv.put(1, KvCache::kPageRows, r.data(), nullptr);
  EXPECT_EQ(kv.k_rows(1).row<float>(KvCache::kPageRows)[11], 2.5f);
}

}  // namespace
