// absorb_mla: kv_b_proj split per head into W_UK transposed and W_UV. Block-scaled FP8 (as
// DeepSeek-V3 ships it) must stay exact, code for code; float weights exact in fp32; our own
// INT8 becomes int8 rows close to the weights.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "runtime/mla_absorb.h"

using namespace moe;

namespace {

ModelConfig mla_config(int nh, int nope, int vd, int R) {
  ModelConfig c;
  c.n_heads = nh;
  c.mla.kv_lora_rank = R;
  c.mla.qk_nope_head_dim = nope;
  c.mla.qk_rope_head_dim = 64;
  c.mla.v_head_dim = vd;
  return c;
}

std::vector<float> random_weights(int64_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(n));
  for (auto& v : w) v = d(g);
  return w;
}

std::vector<float> row_of(const WeightView& w, int64_t r) {
  std::vector<float> out(static_cast<size_t>(w.cols));
  dequantize_row(w, r, out.data());
  return out;
}

// Every element of each head's views against kv_b's own dequantized rows; returns the largest
// absolute difference (0 means bit for bit).
double check_views(const MlaAbsorbed& a, const WeightView& kv_b, int nh, int nope, int vd, int R) {
  double worst = 0;
  EXPECT_EQ(a.uk_t_heads.size(), size_t(nh));
  EXPECT_EQ(a.uv_heads.size(), size_t(nh));
  for (int h = 0; h < nh; ++h) {
    EXPECT_EQ(a.uk_t_heads[size_t(h)].rows, R);
    EXPECT_EQ(a.uk_t_heads[size_t(h)].cols, nope);
    EXPECT_EQ(a.uv_heads[size_t(h)].rows, vd);
    EXPECT_EQ(a.uv_heads[size_t(h)].cols, R);
    for (int d = 0; d < nope; ++d) {
      const auto want = row_of(kv_b, int64_t(h) * (nope + vd) + d);
      for (int r = 0; r < R; ++r) {
        const float got = row_of(a.uk_t_heads[size_t(h)], r)[size_t(d)];
        worst = std::max(worst, std::abs(double(got) - want[size_t(r)]));
      }
    }
    for (int d = 0; d < vd; ++d) {
      const auto want = row_of(kv_b, int64_t(h) * (nope + vd) + nope + d), got = row_of(a.uv_heads[size_t(h)], d);
      for (int r = 0; r < R; ++r)
        worst = std::max(worst, std::abs(double(got[size_t(r)]) - want[size_t(r)]));
    }
  }
  return worst;
}

// Random weights as kv_b_proj in one format, and what absorb_mla makes of them.
struct Case {
  int nh, nope, vd, R;
  std::vector<float> w;
  QuantizedMatrix kv_b;
  MlaAbsorbed a;
  double worst() const { return check_views(a, kv_b.view(), nh, nope, vd, R); }
};

Case absorb(QuantOptions fmt, int nh, int nope, int vd, int R, unsigned seed) {
  Case c{nh, nope, vd, R, random_weights(int64_t(nh) * (nope + vd) * R, seed), {}, {}};
  c.kv_b = quantize(c.w.data(), nh * (nope + vd), R, fmt);
  c.a = absorb_mla(mla_config(nh, nope, vd, R), c.kv_b.view());
  return c;
}

}  // namespace

TEST(MlaAbsorb, BlockFp8IsTransposedCodeForCode) {
  const Case c = absorb({DType::F8E4M3, 128, false}, 2, 128, 128, 256, 1);
  EXPECT_EQ(c.a.uk_t.dtype, DType::F8E4M3);
  EXPECT_EQ(c.a.uk_t.group, 128);
  EXPECT_TRUE(c.a.uv.data.empty()) << "W_UV is read in place from kv_b_proj";
  EXPECT_EQ(c.a.uv_heads[1].data, c.kv_b.view().row_slice(256 + 128, 128).data);
  EXPECT_EQ(c.worst(), 0.0);
}

TEST(MlaAbsorb, FloatWeightsBecomeExactFp32) {
  const Case c = absorb({DType::BF16, 0, false}, 3, 16, 8, 32, 2);  // a fixture's widths: no int8, no FP8 blocks
  EXPECT_EQ(c.a.uk_t.dtype, DType::F32);
  EXPECT_EQ(c.a.uv.dtype, DType::F32);
  EXPECT_EQ(c.worst(), 0.0);
}

TEST(MlaAbsorb, OurInt8BecomesInt8RowsCloseToTheWeights) {
  const Case c = absorb({DType::I8, 0, false}, 2, 64, 32, 96, 3);
  EXPECT_EQ(c.a.uk_t.dtype, DType::I8);
  EXPECT_EQ(c.a.uv.dtype, DType::I8);
  // W_UV keeps each row's codes (the same absmax); W_UK^T is requantized across the other axis,
  // so it is off by at most half of one of its steps, each at most the largest weight / 127.
  double absmax = 0;
  for (float v : c.w) absmax = std::max(absmax, std::abs(double(v)));
  const double worst = c.worst();
  EXPECT_GT(worst, 0.0);
  EXPECT_LE(worst, 0.5 * absmax / 127 * 1.0001);
}

TEST(MlaAbsorb, UnalignedFp8FallsBackToExactFp32) {
  const Case c = absorb({DType::F8E4M3, 128, false}, 2, 32, 32, 64, 4);
  EXPECT_EQ(c.a.uk_t.dtype, DType::F32);
  EXPECT_EQ(c.worst(), 0.0);
}
