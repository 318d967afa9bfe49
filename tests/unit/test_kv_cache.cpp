// KvCache in each KV dtype: rows round as the dtype rounds, read back whole or by column block,
// and prefix copies keep them.
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
    ASSERT_NE(kv.k(1), nullptr);
    EXPECT_EQ(kv.k(1)[5], ks[5]);
  } else {
    EXPECT_EQ(kv.k(1), nullptr);  // no in-place fp32 view of narrower rows
    EXPECT_NE(kb, ks);            // it did round
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
  // Memory: two layers of N rows of (W + V) elements of the type.
  EXPECT_EQ(kv.bytes() - int64_t(kv.tokens().capacity() * sizeof(int32_t)), 2 * N * (W + V) * dtype_size(t));
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

}  // namespace
