// CUDA quantized GEMV/GEMM (kernels/cuda/qgemv.h) against a CPU reference.
//
// Reference: the weights dequantized by quant/quantize.h's dequantize_row (the formats' one
// definition), times fp32 activations, summed in double. (kernels/cpu's matmul is not the
// reference for Q4: it quantizes activations to int8, ~0.3-1% off; the GPU keeps fp32.)
// Metric: max_i |gpu_i - ref_i| / max_i |ref_i|, tolerance 1e-4 for every op (fp32
// accumulation over K <= 2048 is ~1e-6; a wrong nibble or scale is >= 1e-2).
// Inputs are fresh random numbers each run; the seed is printed and MOE_TEST_SEED=<n> repeats
// a run. Outputs are poisoned with NaN before each launch and every element must be written.
// Tests that need a device skip with "no CUDA device: ..." when there is none; the decode
// tests run on the host.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cuda/check.h"
#include "kernels/cuda/decode.h"
#include "kernels/cuda/decode_fast.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_weight.h"
#include "kernels/cuda/qgemv.h"
#include "kernels/cuda/qgemv_variant.h"
#include "gpu/gpu_test.h"
#include "quant/quantize.h"

using namespace moe;
using moe::cuda::DeviceBuffer;
using moe::cuda::DeviceMatrix;
using moe::cuda::detail::QgemvVariant;
using moe::test::fresh_seed;

namespace {

constexpr double kTolerance = 1e-4;  // max |gpu - ref| / max |ref|

// fp32 [rows, cols] with rows of different magnitudes and a few outliers, as real weights have.
std::vector<float> random_weights(std::mt19937_64& rng, int64_t rows, int64_t cols) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> row_scale(0.05f, 2.0f);
  std::vector<float> w(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float s = row_scale(rng);
    for (int64_t c = 0; c < cols; ++c) w[size_t(r * cols + c)] = s * nd(rng) * (rng() % 97 == 0 ? 8.0f : 1.0f);
  }
  return w;
}

// y_ref[M, N] = x[M, K] . dequant(W)[N, K]^T in double.
std::vector<double> reference(const std::vector<float>& x, int64_t M, const WeightView& w) {
  const int64_t N = w.rows, K = w.cols;
  std::vector<double> y(size_t(M * N));
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; ++n) {
    dequantize_row(w, n, row.data());
    for (int64_t m = 0; m < M; ++m) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += double(row[size_t(k)]) * double(x[size_t(m * K + k)]);
      y[size_t(m * N + n)] = s;
    }
  }
  return y;
}

// Runs qgemv (kernel variant v) on the device with NaN-poisoned outputs; returns y [M, N].
std::vector<float> run_gpu(const std::vector<float>& x, int64_t M, const WeightView& host_w,
                           QgemvVariant v = cuda::detail::kDefaultQgemvVariant) {
  const cuda::detail::ScopedQgemvVariant use(v);
  const DeviceMatrix dw(host_w);
  const int64_t N = host_w.rows;
  DeviceBuffer<float> dx(x.size()), dy(size_t(M * N));
  dx.upload(x.data(), x.size());
  MOE_CUDA_CHECK(cudaMemset(dy.get(), 0xff, dy.bytes()));  // 0xffffffff is a NaN
  cuda::qgemv(dx.get(), M, dw.weight(), dy.get(), nullptr);
  MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  std::vector<float> y(dy.size());
  dy.download(y.data(), y.size());
  return y;
}

// Every element written (not the NaN poison) and within the relative tolerance.
void expect_close(const std::vector<float>& got, const std::vector<double>& ref, double tol) {
  ASSERT_EQ(got.size(), ref.size());
  double max_ref = 0, max_err = 0;
  size_t unwritten = 0, first_unwritten = 0, worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_ref = std::max(max_ref, std::abs(ref[i]));
    if (std::isnan(got[i])) {
      if (unwritten++ == 0) first_unwritten = i;
      continue;
    }
    const double e = std::abs(double(got[i]) - ref[i]);
    if (e > max_err) max_err = e, worst = i;
  }
  ASSERT_EQ(unwritten, 0u) << unwritten << " of " << ref.size() << " outputs not written (NaN), first at " << first_unwritten;
  ASSERT_GT(max_ref, 0.0) << "degenerate reference";
  EXPECT_LE(max_err / max_ref, tol) << "worst element " << worst << ": gpu " << got[worst] << " ref " << ref[worst]
                                    << " (max |ref| " << max_ref << ")";
}

struct Case {
  const char* name;
  DType dtype;
  int32_t group;
  int64_t N, K;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }  // gtest prints parameters by name

// K not a power of two everywhere; FP8 also with K % 16 != 0 (per-element path) and N, K that
// leave partial 128x128 scale blocks. The smem variants' K chunks (qgemv_smem.cuh: 8192 floats for
// all M tokens, whole warp steps of 1024 Q4 / 512 FP8 columns): K = 1344 and 1008 end in a partial
// step; 2048 is 2 chunks at M = 8; the K > 8192 cases are 2 chunks at M = 1 (double buffer, the
// last one partial) and 5 at M = 3; N = 40 and 130 leave blocks with rows past N.
const Case kCases[] = {
    {"q4_g32_96x256", DType::Q4, 32, 96, 256},        {"q4_g128_200x384", DType::Q4, 128, 200, 384},
    {"q4_g128_768x2048", DType::Q4, 128, 768, 2048},  {"q4_g64_130x1344", DType::Q4, 64, 130, 1344},
    {"q4z_g64_96x256", DType::Q4Z, 64, 96, 256},      {"q4z_g32_200x384", DType::Q4Z, 32, 200, 384},
    {"q4z_g128_768x2048", DType::Q4Z, 128, 768, 2048},
    {"f8row_96x256", DType::F8E4M3, 0, 96, 256},      {"f8row_200x384", DType::F8E4M3, 0, 200, 384},
    {"f8row_768x2048", DType::F8E4M3, 0, 768, 2048},  {"f8row_130x200", DType::F8E4M3, 0, 130, 200},
    {"f8blk_200x384", DType::F8E4M3, 128, 200, 384},  {"f8blk_768x2048", DType::F8E4M3, 128, 768, 2048},
    {"f8blk_300x1008", DType::F8E4M3, 128, 300, 1008}, {"f8blk_130x200", DType::F8E4M3, 128, 130, 200},
    {"q4_g128_40x8448", DType::Q4, 128, 40, 8448},    {"q4z_g32_40x8448", DType::Q4Z, 32, 40, 8448},
    {"f8blk_40x8464", DType::F8E4M3, 128, 40, 8464},  {"f8row_40x8464", DType::F8E4M3, 0, 40, 8464},
    // MXFP4: gpt-oss's K = 2880 (90 blocks: lanes with 2 and 3 blocks), N past a block of rows.
    {"mx4_96x256", DType::MXFP4, 32, 96, 256},        {"mx4_131x2880", DType::MXFP4, 32, 131, 2880},
    {"mx4_40x8448", DType::MXFP4, 32, 40, 8448},
    // INT8 per-row (`--dense int8` packs' attention and LM head).
    {"i8_96x256", DType::I8, 0, 96, 256},             {"i8_131x2880", DType::I8, 0, 131, 2880},
    {"i8_40x8464", DType::I8, 0, 40, 8464},
};

class QgemvCuda : public ::testing::TestWithParam<std::tuple<Case, int, QgemvVariant>> {};

TEST_P(QgemvCuda, MatchesCpuReference) {
  SKIP_WITHOUT_GPU();
  const auto& [c, M, v] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::vector<float> w = random_weights(rng, c.N, c.K);
  QuantOptions opt;
  opt.dtype = c.dtype;
  opt.group = c.group;
  const QuantizedMatrix q = quantize(w.data(), c.N, c.K, opt);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  std::vector<float> x(size_t(M * c.K));
  for (float& v : x) v = ud(rng);
  expect_close(run_gpu(x, M, q.view(), v), reference(x, M, q.view()), kTolerance);
}

// Every kernel variant (kernels/cuda/qgemv_variant.h) at every case and M.
std::string variant_suffix(QgemvVariant v) {
  std::string n = cuda::detail::variant_name(v);
  for (char& ch : n)
    if (ch == '-') ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Shapes, QgemvCuda,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::Values(1, 3, 8, 17),
                                            ::testing::ValuesIn(cuda::detail::kQgemvVariants)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_M" + std::to_string(std::get<1>(info.param)) +
                                  "_" + variant_suffix(std::get<2>(info.param));
                         });

// Hand-worked: one Q4 row of 32 columns with codes c % 16, scale 0.5, x = 1:
// y = 0.5 * sum_c (c % 16 - 8) = 0.5 * (2 * 120 - 256) = -8.
TEST(QgemvCudaHand, Q4OneBlock) {
  SKIP_WITHOUT_GPU();
  QuantizedMatrix q;
  q.dtype = DType::Q4;
  q.rows = 1, q.cols = 32, q.group = 32;
  q.data.resize(16);
  for (int c = 0; c < 32; ++c) q.data[size_t(c % 16)] |= uint8_t((c % 16) << (c < 16 ? 0 : 4));
  const uint16_t half = 0x3800;  // fp16 0.5
  q.scales.resize(2);
  std::memcpy(q.scales.data(), &half, 2);
  for (const QgemvVariant v : cuda::detail::kQgemvVariants)
    EXPECT_EQ(run_gpu(std::vector<float>(32, 1.0f), 1, q.view(), v)[0], -8.0f) << cuda::detail::variant_name(v);
}

// Hand-worked: FP8 code 0x38 is 1.0 (exponent 7 = bias, mantissa 0); 16 columns, row scale 2,
// x = 0..15: y = 2 * 120 = 240.
TEST(QgemvCudaHand, F8OneRow) {
  SKIP_WITHOUT_GPU();
  QuantizedMatrix q;
  q.dtype = DType::F8E4M3;
  q.rows = 1, q.cols = 16, q.group = 0;
  q.data.assign(16, 0x38);
  const float two = 2.0f;
  q.scales.resize(4);
  std::memcpy(q.scales.data(), &two, 4);
  std::vector<float> x(16);
  for (int i = 0; i < 16; ++i) x[size_t(i)] = float(i);
  for (const QgemvVariant v : cuda::detail::kQgemvVariants)
    EXPECT_EQ(run_gpu(x, 1, q.view(), v)[0], 240.0f) << cuda::detail::variant_name(v);
}

// The kernels' word decoders agree with quant/dtype.h (host only, no GPU needed).
TEST(CudaDecode, F8EveryCodeMatchesDtypeH) {
  for (uint32_t b = 0; b < 256; ++b) {
    if ((b & 0x7f) == 0x7f) continue;  // NaN codes: documented to differ (decode.h)
    for (int p = 0; p < 4; ++p) {
      const uint32_t word = (b << (8 * p)) | (0xa5a5a5a5u & ~(0xffu << (8 * p)));  // other bytes non-zero
      const float got = cuda::f8_byte(word, p), want = f8e4m3_to_f32(uint8_t(b));
      EXPECT_EQ(f32_to_bits(got), f32_to_bits(want)) << "code 0x" << std::hex << b << " byte " << p;
    }
  }
}

TEST(CudaDecode, Q4EveryNibbleMatchesDtypeH) {
  std::mt19937_64 rng(fresh_seed());
  for (int trial = 0; trial < 64; ++trial) {
    uint8_t block[16];
    for (uint8_t& v : block) v = uint8_t(rng());
    const int zero = int(rng() % 16);
    for (int j = 0; j < 4; ++j) {
      uint32_t word;
      std::memcpy(&word, block + 4 * j, 4);  // little-endian, as the device loads it
      for (int p = 0; p < 4; ++p)
        for (int h = 0; h < 2; ++h) {
          const int col = cuda::q4_column(j, p, h);
          EXPECT_EQ(cuda::q4_nibble(word, 8 * p + 4 * h, cuda::q4_magic(zero)), float(q4_code(block, col) - zero))
              << "column " << col;
        }
    }
  }
}

// INT8: every byte value at every position of a word, against the signed code (host only).
TEST(CudaDecode, I8EveryByteMatchesItsCode) {
  for (uint32_t b = 0; b < 256; ++b)
    for (int p = 0; p < 4; ++p) {
      const uint32_t word = (b << (8 * p)) | (0x5a5a5a5au & ~(0xffu << (8 * p)));  // other bytes non-zero
      EXPECT_EQ(cuda::i8_byte(word, p), float(int8_t(uint8_t(b)))) << "byte " << b << " at " << p;
    }
}

// MXFP4: every nibble of random blocks, word by word and half by half, against quant/dtype.h's
// column order and e2m1 values (host only, no GPU needed).
TEST(CudaDecode, Mx4EveryNibbleMatchesDtypeH) {
  std::mt19937_64 rng(fresh_seed());
  for (int trial = 0; trial < 64; ++trial) {
    uint8_t block[16];
    for (uint8_t& v : block) v = uint8_t(rng());
    for (int j = 0; j < 4; ++j) {
      uint32_t word;
      std::memcpy(&word, block + 4 * j, 4);  // little-endian, as the device loads it
      for (int h = 0; h < 2; ++h) {
        float d[4];
        cuda::mx4_quad(word, h, d);
        for (int p = 0; p < 4; ++p) {
          const int col = 8 * j + 4 * h + p;
          EXPECT_EQ(d[p], e2m1_to_f32(uint8_t(mxfp4_code(block, col)))) << "column " << col;
        }
      }
    }
  }
}

// The fast variants' decoders (decode_fast.h) times their activation scale are the weight times
// their fixed unit, exactly (host only, no GPU needed).
TEST(CudaDecode, F8FastEveryCodeMatchesDtypeH) {
  for (uint32_t b = 0; b < 256; ++b) {
    if ((b & 0x7f) == 0x7f) continue;  // NaN codes: documented to differ (decode.h)
    for (int p = 0; p < 4; ++p) {
      const uint32_t word = (b << (8 * p)) | (0x5a5a5a5au & ~(0xffu << (8 * p)));
      EXPECT_EQ(double(cuda::f8_fast_byte(word, p)) * double(cuda::kF8FastXScale),
                double(f8e4m3_to_f32(uint8_t(b))) * double(cuda::kF8FastUnit))
          << "code 0x" << std::hex << b << " byte " << p;
    }
  }
}

TEST(CudaDecode, Q4FastEveryNibbleMatchesDtypeH) {
  std::mt19937_64 rng(fresh_seed());
  for (int trial = 0; trial < 64; ++trial) {
    uint8_t block[16];
    for (uint8_t& v : block) v = uint8_t(rng());
    for (int j = 0; j < 4; ++j) {
      uint32_t word;
      std::memcpy(&word, block + 4 * j, 4);
      for (int p = 0; p < 4; ++p)
        for (int h = 0; h < 2; ++h) {
          const int col = cuda::q4_column(j, p, h);
          const float d = cuda::q4_fast_nibble(cuda::q4_fast_half(word, p), p, h);
          EXPECT_EQ(double(d) * double(cuda::q4_fast_x_scale(col)), double(q4_code(block, col)) * double(cuda::kQ4FastUnit))
              << "column " << col;
        }
    }
  }
}

// Bad arguments are refused before anything touches the device (no GPU needed).
TEST(QgemvCudaArgs, RejectsUnsupportedInput) {
  alignas(16) static float buf[64];
  cuda::DeviceWeight w{DType::F32, buf, 4, 16, buf, nullptr, 0};
  EXPECT_THROW(cuda::qgemv(buf, 1, w, buf, nullptr), std::invalid_argument);  // no kernel for F32
  w.dtype = DType::Q4;
  w.group = 32;
  w.cols = 48;
  EXPECT_THROW(cuda::qgemv(buf, 1, w, buf, nullptr), std::invalid_argument);  // 48 % 32 != 0
  w.cols = 32;
  w.dtype = DType::Q4Z;
  EXPECT_THROW(cuda::qgemv(buf, 1, w, buf, nullptr), std::invalid_argument);  // Q4Z without zeros
  w.dtype = DType::Q4;
  EXPECT_THROW(cuda::qgemv(buf + 1, 1, w, buf, nullptr), std::invalid_argument);  // x not 16-byte aligned
  EXPECT_THROW(cuda::qgemv(buf, -1, w, buf, nullptr), std::invalid_argument);
  w.dtype = DType::F8E4M3;
  w.group = 64;
  EXPECT_THROW(cuda::qgemv(buf, 1, w, buf, nullptr), std::invalid_argument);  // F8 group 0 or 128
  try {
    w.group = 32;
    cuda::qgemv(buf, 1, w, buf, nullptr);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("group must be 0"), std::string::npos) << e.what();
  }
  w.dtype = DType::I8;
  w.group = 0;
  w.cols = 24;
  EXPECT_THROW(cuda::qgemv(buf, 1, w, buf, nullptr), std::invalid_argument);  // I8 K % 16 != 0
  w.cols = 32;
  w.group = 32;
  EXPECT_THROW(cuda::qgemv(buf, 1, w, buf, nullptr), std::invalid_argument);  // I8 per-row scales only
  w.dtype = DType::MXFP4;
  w.group = 16;
  EXPECT_THROW(cuda::qgemv(buf, 1, w, buf, nullptr), std::invalid_argument);  // MXFP4 group 32 only
  w.group = 32;
  w.cols = 48;
  EXPECT_THROW(cuda::qgemv(buf, 1, w, buf, nullptr), std::invalid_argument);  // 48 % 32 != 0
  EXPECT_NO_THROW(cuda::qgemv(buf, 0, cuda::DeviceWeight{DType::Q4, buf, 4, 32, buf, nullptr, 32}, buf, nullptr));
}

}  // namespace
