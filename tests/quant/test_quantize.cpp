// Quantizers: exact round trips of representable values, error bounds on Gaussian data,
// clip search never worse than round-to-nearest, bad shapes rejected with a usable message.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/quantize.h"

using namespace moe;

namespace {

std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

std::vector<float> dequantize(const QuantizedMatrix& m) {
  std::vector<float> out(size_t(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; ++r) dequantize_row(m.view(), r, &out[size_t(r * m.cols)]);
  return out;
}

// Sum of squared errors of one group.
double group_sse(const std::vector<float>& a, const std::vector<float>& b, size_t off, int n) {
  double e = 0;
  for (int i = 0; i < n; ++i) e += double(a[off + i] - b[off + i]) * (a[off + i] - b[off + i]);
  return e;
}

}  // namespace

TEST(Quantize, Q4RoundTripIsExactForRepresentableValues) {
  // Each group holds (q - 8) * s with s exact in fp16 and code 0 present, so the group's
  // largest magnitude is -8 s and the quantizer must find s again.
  std::mt19937_64 g(1);
  const float steps[] = {0.5f, 0.25f, 0.0625f, 0.75f, 3.0f};
  for (int G : {32, 64, 128}) {
    const int64_t rows = 5, cols = 256;
    std::vector<float> w(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t gi = 0; gi < cols / G; ++gi) {
        const float s = steps[(r + gi) % 5];
        for (int i = 0; i < G; ++i) w[size_t(r * cols + gi * G + i)] = (float(i == 3 ? 0 : g() % 16) - 8.0f) * s;
      }
    const QuantizedMatrix m = quantize(w.data(), rows, cols, {DType::Q4, G, false});
    EXPECT_EQ(dequantize(m), w) << "group " << G;
  }
}

TEST(Quantize, Q4ZRoundTripIsExactForRepresentableValues) {
  std::mt19937_64 g(2);
  const int64_t rows = 4, cols = 128, G = 32;
  std::vector<float> w(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t gi = 0; gi < cols / G; ++gi) {
      const float s = gi % 2 ? 0.25f : 0.125f;
      const int z = int(1 + (r * 3 + gi) % 14);
      for (int i = 0; i < G; ++i) {
        const int q = i == 0 ? 0 : i == 1 ? 15 : int(g() % 16);  // both ends of the code range
        w[size_t(r * cols + gi * G + i)] = float(q - z) * s;
      }
    }
  const QuantizedMatrix m = quantize(w.data(), rows, cols, {DType::Q4Z, int32_t(G), false});
  EXPECT_EQ(dequantize(m), w);
}

TEST(Quantize, F8RoundTripIsExactForRepresentableValues) {
  // Codes times a power-of-two scale, with 448 (code 0x7e) in every row / block: the scale
  // absmax / 448 is then the power of two itself.
  std::mt19937_64 g(3);
  for (int group : {0, 128}) {
    const int64_t rows = 130, cols = 256;
    std::vector<float> w(size_t(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        uint8_t code = uint8_t(g() % 256);
        if ((code & 0x7f) == 0x7f) code = 0;  // NaN codes are not values
        if (c % 128 == 0 && (group == 0 ? c == 0 : r % 128 == 0)) code = 0x7e;
        w[size_t(r * cols + c)] = f8e4m3_to_f32(code) * 0.0078125f;
      }
    const QuantizedMatrix m = quantize(w.data(), rows, cols, {DType::F8E4M3, group, false});
    EXPECT_EQ(dequantize(m), w) << "group " << group;
  }
}

TEST(Quantize, Mxfp4RoundTripIsExactForRepresentableValues) {
  // e2m1 codes times a power-of-two block scale, with 6 (code 7) or -6 in every block: the
  // chosen scale is then that power of two and every value maps back to its code.
  std::mt19937_64 g(5);
  const int64_t rows = 9, cols = 128;
  std::vector<float> w(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int e = int(r % 5) - 2;  // scales 2^-2 .. 2^2
      uint8_t code = uint8_t(g() % 16);
      if (c % 32 == 5) code = r % 2 ? 0x7 : 0xF;
      w[size_t(r * cols + c)] = std::ldexp(e2m1_to_f32(code), e);
    }
  const QuantizedMatrix m = quantize(w.data(), rows, cols, {DType::MXFP4, 32, false});
  const std::vector<float> back = dequantize(m.view());
  for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(back[i], w[i] == 0.0f ? 0.0f : w[i]) << i;  // -0 may come back +0
  EXPECT_EQ(e2m1_to_f32(0x7), 6.0f);
  EXPECT_EQ(e2m1_to_f32(0xA), -1.0f);
  EXPECT_EQ(e8m0_to_f32(127), 1.0f);
  EXPECT_EQ(e8m0_to_f32(130), 8.0f);
  EXPECT_EQ(e8m0_to_f32(0), std::ldexp(1.0f, -127));
}

TEST(Quantize, I8AndPlainFormatsRoundTrip) {
  std::mt19937_64 g(4);
  const int64_t rows = 3, cols = 64;
  std::vector<float> w(size_t(rows * cols));
  for (int64_t i = 0; i < rows * cols; ++i) w[size_t(i)] = float(int(g() % 255) - 127) * 0.5f;
  for (int64_t r = 0; r < rows; ++r) w[size_t(r * cols + 5)] = 127 * 0.5f;
  EXPECT_EQ(dequantize(quantize(w.data(), rows, cols, {DType::I8, 0, false})), w);
  for (DType t : {DType::F32, DType::F16, DType::BF16})  // small integers * 0.5: exact in all three
    EXPECT_EQ(dequantize(quantize(w.data(), rows, cols, {t, 0, false})), w) << dtype_name(t);
}

TEST(Quantize, ErrorBoundsOnGaussianData) {
  const int64_t rows = 64, cols = 1024;
  const auto w = randn(size_t(rows * cols), 5);
  struct Case {
    QuantOptions opt;
    double bound;
  };
  // Expected NMSE: INT4 ~ step^2/12 over variance (a few 1e-3), e4m3 ~ 2^-8 / 3, int8 ~ 1e-5.
  const Case cases[] = {{{DType::Q4, 32, false}, 1e-2},  {{DType::Q4, 64, false}, 1.2e-2},
                        {{DType::Q4, 128, false}, 1.5e-2}, {{DType::Q4Z, 32, false}, 1e-2},
                        {{DType::Q4Z, 128, false}, 1.5e-2}, {{DType::F8E4M3, 0, false}, 2e-3},
                        {{DType::F8E4M3, 128, false}, 2e-3}, {{DType::I8, 0, false}, 1e-4},
                        {{DType::F16, 0, false}, 1e-7},    {{DType::BF16, 0, false}, 1e-5}};
  for (const Case& c : cases) {
    const double e = nmse(w.data(), dequantize(quantize(w.data(), rows, cols, c.opt)).data(), rows * cols);
    EXPECT_LT(e, c.bound) << dtype_name(c.opt.dtype) << " group " << c.opt.group;
    EXPECT_GT(e, 0.0) << dtype_name(c.opt.dtype);
  }
}

TEST(Quantize, ClipSearchNeverWorseThanRoundToNearest) {
  // Heavy tails (Student-t like) are where clipping pays; compare group by group.
  const int64_t rows = 16, cols = 512;
  auto w = randn(size_t(rows * cols), 6);
  const auto u = randn(size_t(rows * cols), 7);
  for (size_t i = 0; i < w.size(); ++i) w[i] = w[i] / (0.3f + std::fabs(u[i]));
  for (DType t : {DType::Q4, DType::Q4Z})
    for (int G : {32, 128}) {
      const auto rtn = dequantize(quantize(w.data(), rows, cols, {t, G, false}));
      const auto clip = dequantize(quantize(w.data(), rows, cols, {t, G, true}));
      double total_rtn = 0, total_clip = 0;
      for (size_t off = 0; off < w.size(); off += size_t(G)) {
        const double a = group_sse(w, rtn, off, G), b = group_sse(w, clip, off, G);
        EXPECT_LE(b, a * (1 + 1e-12) + 1e-30) << dtype_name(t) << " G " << G << " at " << off;
        total_rtn += a, total_clip += b;
      }
      EXPECT_LT(total_clip, 0.95 * total_rtn) << dtype_name(t) << " G " << G;
    }
}

TEST(Quantize, RejectsBadShapesWithAUsableMessage) {
  std::vector<float> w(3 * 100, 1.0f);
  try {
    quantize(w.data(), 3, 100, {DType::Q4, 32, false});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "cols (100) is not a multiple of the group size 32; choose --group-size that divides 100");
  }
  EXPECT_THROW(quantize(w.data(), 3, 100, {DType::Q4Z, 64, false}), std::invalid_argument);
  EXPECT_THROW(quantize(w.data(), 1, 96, {DType::Q4, 48, false}), std::invalid_argument);
  EXPECT_THROW(quantize(w.data(), 1, 128, {DType::F8E4M3, 64, false}), std::invalid_argument);
}

TEST(Quantize, AllZeroGroupsStayZero) {
  std::vector<float> w(2 * 128, 0.0f);
  for (DType t : {DType::Q4, DType::Q4Z, DType::F8E4M3, DType::I8}) {
    const auto d = dequantize(quantize(w.data(), 2, 128, {t, t == DType::F8E4M3 ? 128 : 32, true}));
    EXPECT_EQ(d, w) << dtype_name(t);
  }
}

TEST(Quantize, NmseIsRelativeSquaredError) {
  const float ref[] = {1, 2, 2}, approx[] = {1, 2, 3};
  EXPECT_DOUBLE_EQ(nmse(ref, approx, 3), 1.0 / 9.0);
  EXPECT_DOUBLE_EQ(nmse(ref, ref, 3), 0.0);
}
