// Fused-dequant matmul (kernels/cpu/qmatmul.h): every SIMD variant this CPU runs against the
// scalar reference, and the scalar reference against a float64 matmul of the dequantized
// weights. Random data, awkward shapes, outputs poisoned with NaN, bias.
//
// Tolerances (relative L2, ||y - ref|| / ||ref||):
//   SIMD vs scalar        1e-5  same integer sums / same products, only the fp32 summation
//                               order differs (observed ~1e-7).
//   scalar vs float64, F8 1e-5  fp32 accumulation only.
//   scalar vs float64, Q4/Q4Z/I8  2e-2  int8 activations per 32-block: error ~ step/sqrt(12)
//                               = amax/127/3.5 per element, ~0.5% of the dot (observed 3-6e-3).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/amx.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/qmatmul.h"
#include "quant/quantize.h"

using namespace moe;
using cpu::Isa;

namespace {

std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

double rel_err(const std::vector<float>& a, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - ref[i]) * (a[i] - ref[i]), den += ref[i] * ref[i];
  return std::sqrt(num / den);
}

struct Format {
  DType dtype;
  int32_t group;
  std::string name() const { return std::string(dtype_name(dtype)) + "_g" + std::to_string(group); }
  bool int8_acts() const { return dtype != DType::F8E4M3 && dtype != DType::MXFP4; }
};

const Format kFormats[] = {{DType::Q4, 32},        {DType::Q4, 64},      {DType::Q4, 128},
                           {DType::Q4Z, 32},       {DType::Q4Z, 128},    {DType::F8E4M3, 0},
                           {DType::F8E4M3, 128},   {DType::I8, 0},       {DType::MXFP4, 32}};

// Runs one variant on NaN-poisoned output and checks every element was written.
std::vector<float> run(ThreadPool& pool, Isa isa, const std::vector<float>& x, int64_t M, const WeightView& w,
                       const float* bias) {
  std::vector<float> y(size_t(M * w.rows), NAN);
  cpu::qmatmul(pool, x.data(), M, w, y.data(), bias, isa);
  for (size_t i = 0; i < y.size(); ++i)
    if (!std::isfinite(y[i])) {
      ADD_FAILURE() << cpu::isa_name(isa) << ": y[" << i << "] not written (" << y[i] << ")";
      break;
    }
  return y;
}

std::vector<double> as_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// float64 y = x . dequant(W)^T + bias.
std::vector<double> reference(const std::vector<float>& x, int64_t M, const WeightView& w, const float* bias) {
  const int64_t N = w.rows, K = w.cols;
  std::vector<float> row(static_cast<size_t>(K));
  std::vector<double> y(size_t(M * N));
  for (int64_t n = 0; n < N; ++n) {
    dequantize_row(w, n, row.data());
    for (int64_t m = 0; m < M; ++m) {
      double s = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += double(x[size_t(m * K + k)]) * row[size_t(k)];
      y[size_t(m * N + n)] = s;
    }
  }
  return y;
}

struct Shape {
  int64_t M, N, K;
};

class QMatmul : public ::testing::TestWithParam<Format> {};

}  // namespace

TEST_P(QMatmul, VariantsMatchScalarAndScalarMatchesFloat64) {
  const Format f = GetParam();
  ThreadPool pool(3);  // more threads than cores on purpose: exercises uneven row splits
  uint64_t seed = 10;
  double worst64 = 0, worst_simd[3] = {0, 0, 0};
  for (int64_t K : {32, 96, 4096, 352}) {
    if (f.group && K % f.group) continue;
    for (int64_t N : {1, 33, 257})
      for (int64_t M : {1, 3, 17}) {
        SCOPED_TRACE(f.name() + " M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
        const auto wf = randn(size_t(N * K), ++seed, 0.02f);
        const auto x = randn(size_t(M * K), ++seed);
        const auto bias = randn(size_t(N), ++seed);
        const QuantizedMatrix q = quantize(wf.data(), N, K, {f.dtype, f.group, false});
        const float* b = (N % 2) ? bias.data() : nullptr;  // N here is always odd; see BiasIsAdded
        const auto ref = run(pool, Isa::Scalar, x, M, q.view(), b);
        const double e64 = rel_err(ref, reference(x, M, q.view(), b));
        EXPECT_LT(e64, f.int8_acts() ? 2e-2 : 1e-5) << "scalar vs float64";
        worst64 = std::max(worst64, e64);
        for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
          if (!cpu::isa_supported(isa)) continue;
          const auto y = run(pool, isa, x, M, q.view(), b);
          const double e = rel_err(y, as_double(ref));
          EXPECT_LT(e, 1e-5) << cpu::isa_name(isa) << " vs scalar";
          worst_simd[int(isa)] = std::max(worst_simd[int(isa)], e);
        }
      }
  }
  std::printf("[   INFO   ] %s worst rel. error: scalar vs float64 %.2e; vs scalar: avx2 %.2e, avx512 %.2e\n",
              f.name().c_str(), worst64, worst_simd[int(Isa::Avx2)], worst_simd[int(Isa::Avx512)]);
}

TEST_P(QMatmul, BiasIsAddedAndMatmulDispatches) {
  const Format f = GetParam();
  ThreadPool pool(2);
  const int64_t M = 5, N = 40, K = 256;
  const auto wf = randn(size_t(N * K), 1, 0.05f), x = randn(size_t(M * K), 2), bias = randn(size_t(N), 3);
  const QuantizedMatrix q = quantize(wf.data(), N, K, {f.dtype, f.group, false});
  const auto with = run(pool, Isa::Scalar, x, M, q.view(), bias.data());
  const auto without = run(pool, Isa::Scalar, x, M, q.view(), nullptr);
  for (int64_t i = 0; i < M * N; ++i) EXPECT_NEAR(with[size_t(i)] - without[size_t(i)], bias[size_t(i % N)], 1e-5);
  // cpu::matmul (the engine's entry point) takes the active variant and an F32 bias view.
  std::vector<float> y(size_t(M * N), NAN);
  WeightView bv{DType::F32, bias.data(), N, 1};
  cpu::matmul(pool, x.data(), M, q.view(), y.data(), bv);
  EXPECT_LT(rel_err(y, as_double(with)), 1e-5) << "active variant " << cpu::isa_name(cpu::active_isa());
}

INSTANTIATE_TEST_SUITE_P(Formats, QMatmul, ::testing::ValuesIn(kFormats),
                         [](const auto& info) { return info.param.name(); });

TEST(QMatmulSemantics, HandWorkedQ4Case) {
  // One 32-column group, every code 9 (w = +1 * 0.5), x all ones: xq = 127 with d = 1/127, so
  // y = 0.5 * (1/127) * (32 * 9 * 127 - 8 * 32 * 127) = 16.
  std::vector<uint8_t> data(16, 0x99);
  const uint16_t scale = f32_to_f16(0.5f);
  WeightView w{DType::Q4, data.data(), 1, 32, &scale, nullptr, 32};
  std::vector<float> x(32, 1.0f);
  ThreadPool pool(1);
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (!cpu::isa_supported(isa)) continue;
    float y = NAN;
    cpu::qmatmul(pool, x.data(), 1, w, &y, nullptr, isa);
    EXPECT_NEAR(y, 16.0f, 1e-5) << cpu::isa_name(isa);
  }
}

TEST(QMatmulSemantics, HandWorkedMxfp4Case) {
  // Columns 2i get code 0x3 (1.5), columns 2i+1 code 0xC (-2): byte 0xC3. Scale byte 126 is
  // 2^-1. x = 1 for even columns, 2 for odd: y = 0.5 * 16 * (1.5 * 1 + (-2) * 2) = -20.
  std::vector<uint8_t> data(16, 0xC3);
  const uint8_t scale = 126;
  WeightView w{DType::MXFP4, data.data(), 1, 32, &scale, nullptr, 32};
  std::vector<float> x(32);
  for (int c = 0; c < 32; ++c) x[size_t(c)] = c % 2 ? 2.0f : 1.0f;
  ThreadPool pool(1);
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (!cpu::isa_supported(isa)) continue;
    float y = NAN;
    cpu::qmatmul(pool, x.data(), 1, w, &y, nullptr, isa);
    EXPECT_FLOAT_EQ(y, -20.0f) << cpu::isa_name(isa);
  }
}

TEST(QMatmulSemantics, RejectsShapesTheKernelsCannotRun) {
  ThreadPool pool(1);
  std::vector<uint8_t> data(48);
  std::vector<float> scales(2), x(48), y(2);
  WeightView w{DType::I8, data.data(), 1, 48, scales.data(), nullptr, 0};
  EXPECT_THROW(cpu::qmatmul(pool, x.data(), 1, w, y.data(), nullptr, Isa::Scalar), std::invalid_argument);
  WeightView f{DType::F32, x.data(), 1, 48};
  EXPECT_THROW(cpu::qmatmul(pool, x.data(), 1, f, y.data(), nullptr, Isa::Scalar), std::invalid_argument);
}

TEST(QMatmulSemantics, ToF32DecodesQuantizedSpans) {
  const auto wf = randn(3 * 64, 9);
  const QuantizedMatrix q = quantize(wf.data(), 3, 64, {DType::Q4, 32, false});
  std::vector<float> rows(3 * 64), span(100);
  for (int r = 0; r < 3; ++r) dequantize_row(q.view(), r, &rows[size_t(r * 64)]);
  cpu::to_f32(q.view(), 40, 100, span.data());  // crosses two row boundaries
  for (int i = 0; i < 100; ++i) EXPECT_EQ(span[size_t(i)], rows[size_t(40 + i)]);
}

// qmatmul_many (one parallel section for several matrices): every job's y must equal qmatmul's
// for that job alone, bit for bit, on every variant; the mix covers each dtype and both Q4
// paths (GEMV tiles for M < 12, rows-in-lanes for M >= 12), with and without bias.
TEST(QMatmulMany, EachJobEqualsItsOwnCall) {
  ThreadPool pool(3);
  struct Case {
    Format f;
    int64_t M, N, K;
  };
  const Case cases[] = {{{DType::Q4, 32}, 1, 77, 256},  {{DType::Q4Z, 64}, 3, 40, 128}, {{DType::I8, 0}, 2, 9, 96},
                        {{DType::F8E4M3, 128}, 1, 130, 256}, {{DType::MXFP4, 32}, 1, 31, 64}, {{DType::Q4, 32}, 20, 50, 128},
                        {{DType::Q4, 128}, 1, 3, 512}, {{DType::I8, 0}, 13, 21, 160}};
  std::vector<QuantizedMatrix> mats;
  std::vector<std::vector<float>> xs, biases;
  uint64_t seed = 40;
  for (const Case& c : cases) {
    const auto wf = randn(size_t(c.N * c.K), ++seed, 0.03f);
    mats.push_back(quantize(wf.data(), c.N, c.K, {c.f.dtype, c.f.group, false}));
    xs.push_back(randn(size_t(c.M * c.K), ++seed));
    biases.push_back(randn(size_t(c.N), ++seed));
  }
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (!cpu::isa_supported(isa)) continue;
    std::vector<std::vector<float>> ys;
    std::vector<cpu::MatJob> jobs;
    for (size_t i = 0; i < std::size(cases); ++i) ys.emplace_back(size_t(cases[i].M * cases[i].N), NAN);
    for (size_t i = 0; i < std::size(cases); ++i)
      jobs.push_back({xs[i].data(), cases[i].M, mats[i].view(), ys[i].data(), i % 2 ? biases[i].data() : nullptr});
    cpu::qmatmul_many(pool, jobs, isa);
    for (size_t i = 0; i < std::size(cases); ++i) {
      const auto one = run(pool, isa, xs[i], cases[i].M, mats[i].view(), jobs[i].bias);
      for (size_t e = 0; e < one.size(); ++e)
        ASSERT_EQ(ys[i][e], one[e]) << cpu::isa_name(isa) << " job " << i << " (" << cases[i].f.name() << ") element " << e;
    }
  }
}

// Jobs that read the same x (a decode step's gate and up projections of all its experts) share
// one preparation of it inside qmatmul_many: each must still equal its own call, bit for bit,
// whether its neighbours have the same dtype (Q4 g32 and g128), the other Q4 layout (Q4Z) or
// I8, and whether they read x with another M or K (which must not share).
TEST(QMatmulMany, JobsReadingOneXEqualTheirOwnCalls) {
  ThreadPool pool(2);
  const int64_t K = 512;
  const auto x = randn(size_t(3 * K), 70);
  const Format fs[] = {{DType::Q4, 32}, {DType::Q4, 128}, {DType::Q4Z, 32}, {DType::I8, 0}, {DType::Q4, 32}, {DType::I8, 0}};
  std::vector<QuantizedMatrix> mats;
  for (size_t i = 0; i < std::size(fs); ++i) {
    const auto wf = randn(size_t(37 * K), 80 + i, 0.03f);
    mats.push_back(quantize(wf.data(), 37, K, {fs[i].dtype, fs[i].group, false}));
  }
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (!cpu::isa_supported(isa)) continue;
    for (int64_t M : {int64_t(1), int64_t(3)}) {
      std::vector<std::vector<float>> ys(std::size(fs), std::vector<float>(size_t(M * 37), NAN));
      std::vector<cpu::MatJob> jobs;
      for (size_t i = 0; i < std::size(fs); ++i) jobs.push_back({x.data(), M, mats[i].view(), ys[i].data()});
      // The same x pointer with one row fewer: another preparation.
      std::vector<float> y_short(size_t(37 * std::max<int64_t>(M - 1, 1)), NAN);
      if (M > 1) jobs.push_back({x.data(), M - 1, mats[0].view(), y_short.data()});
      cpu::qmatmul_many(pool, jobs, isa);
      for (size_t i = 0; i < jobs.size(); ++i) {
        const std::vector<float> xi(x.begin(), x.begin() + jobs[i].M * K);
        const auto one = run(pool, isa, xi, jobs[i].M, jobs[i].w, nullptr);
        const std::vector<float>& got = i < std::size(fs) ? ys[i] : y_short;
        for (size_t e = 0; e < one.size(); ++e)
          ASSERT_EQ(got[e], one[e]) << cpu::isa_name(isa) << " M " << M << " job " << i << " element " << e;
      }
    }
  }
}

// One bad job is refused before any job runs: no output is half written.
TEST(QMatmulMany, RejectsBeforeRunningAny) {
  ThreadPool pool(2);
  const auto wf = randn(8 * 64, 3, 0.03f), x = randn(64, 4);
  const QuantizedMatrix good = quantize(wf.data(), 8, 64, {DType::Q4, 32, false});
  std::vector<uint8_t> bad_data(48);
  std::vector<float> bad_scales(1), y1(8, NAN), y2(1, NAN);
  const cpu::MatJob jobs[] = {{x.data(), 1, good.view(), y1.data()},
                              {x.data(), 1, WeightView{DType::I8, bad_data.data(), 1, 48, bad_scales.data(), nullptr, 0}, y2.data()}};
  EXPECT_THROW(cpu::qmatmul_many(pool, jobs, Isa::Scalar), std::invalid_argument);
  for (float v : y1) EXPECT_TRUE(std::isnan(v));
}

// Each row of x gets the same y bits whatever the other rows of its call (M = 1 .. 80: the GEMV,
// small tiles and rows in lanes, the last with packed Q4 weights up to 64 rows and unpacked ones
// past that, one or two 16-row blocks of x at a time), so a batch's composition cannot change a
// sequence's tokens. K = 352, 1120, 768 and 704 end in partial quads (512 columns for Q4, 256 for
// I8); 768 and 704 in a Q4 quad of two chunks, the second of 704 partial. AVX2 Q4 puts 8 rows of
// x in the lanes from M = 8 on (qgemm_avx2_q4m.cpp). At K = 4096, N = 130: each thread's rows
// span several of the AVX2 kernels' chunks of weight rows (weight_chunk_rows, the lanes kernel's).
TEST(QMatmulSemantics, RowResultsDoNotDependOnM) {
  ThreadPool pool(2);
  const Format fs[] = {{DType::Q4, 32},  {DType::Q4, 128},      {DType::Q4Z, 32},
                       {DType::I8, 0},   {DType::F8E4M3, 128},  {DType::MXFP4, 32}};
  uint64_t seed = 90;
  for (const Format& f : fs)
    for (int64_t K : {512, 352, 1120, 768, 704, 4096}) {
      if (f.group && K % f.group) continue;
      const int64_t N = K == 4096 ? 130 : 19;
      const auto wf = randn(size_t(N * K), ++seed, 0.03f);
      const QuantizedMatrix q = quantize(wf.data(), N, K, {f.dtype, f.group, false});
      const auto x = randn(size_t(80 * K), ++seed);
      const auto bias = randn(size_t(N), ++seed);
      for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
        if (!cpu::isa_supported(isa)) continue;
        std::vector<std::vector<float>> alone;  // each row of x in a call of its own
        for (int64_t m = 0; m < 80; ++m)
          alone.push_back(run(pool, isa, std::vector<float>(x.begin() + m * K, x.begin() + (m + 1) * K), 1, q.view(), bias.data()));
        for (int64_t M : {2, 3, 4, 5, 7, 8, 9, 11, 12, 16, 17, 33, 40, 64, 65, 80}) {
          const auto y = run(pool, isa, std::vector<float>(x.begin(), x.begin() + M * K), M, q.view(), bias.data());
          for (int64_t m = 0; m < M; ++m)
            for (int64_t n = 0; n < N; ++n)
              ASSERT_EQ(y[size_t(m * N + n)], alone[size_t(m)][size_t(n)])
                  << f.name() << " " << cpu::isa_name(isa) << " K=" << K << " M=" << M << " row " << m << " n=" << n;
        }
      }
    }
}

// The AMX kernel (kernels/cpu/amx.h) gives the rows-in-lanes kernel's bits: same integer sums,
// same float steps in the same order. Q4 and Q4Z; short rows (K <= 1024) and long ones, K of
// under 16 blocks (phases with no block), groups of 32 to 128, partial 16-row blocks of x and of
// weights, one and two threads, passes over x (K = 4096 holds 8 blocks of x per pass). Skipped
// where the CPU or the OS has no AMX.
TEST(QMatmulAmx, EqualsTheRowsInLanesKernelBitForBit) {
  if (!cpu::amx_supported()) GTEST_SKIP() << "no AMX here";
  const Format fs[] = {{DType::Q4, 32}, {DType::Q4, 64}, {DType::Q4, 128}, {DType::Q4Z, 32}, {DType::Q4Z, 128}};
  uint64_t seed = 700;
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (const Format& f : fs)
      for (int64_t K : {128, 224, 352, 768, 1120, 2048, 4096}) {
        if (K % f.group) continue;
        for (int64_t N : {16, 37}) {
          const auto wf = randn(size_t(N * K), ++seed, 0.03f);
          const QuantizedMatrix q = quantize(wf.data(), N, K, {f.dtype, f.group, false});
          const auto bias = randn(size_t(N), ++seed);
          for (int64_t M : {17, 31, 80, 150}) {  // up to 16 rows of x stay on AVX-512 (amx_gemm)
            const auto x = randn(size_t(M * K), ++seed);
            const bool was = cpu::set_amx_enabled(false);
            const auto ref = run(pool, Isa::Avx512, x, M, q.view(), bias.data());
            cpu::set_amx_enabled(true);
            const auto got = run(pool, Isa::Avx512, x, M, q.view(), bias.data());
            cpu::set_amx_enabled(was);
            for (size_t i = 0; i < ref.size(); ++i)
              ASSERT_EQ(got[i], ref[i]) << f.name() << " K=" << K << " N=" << N << " M=" << M << " threads=" << threads
                                        << " at " << i;
          }
        }
      }
  }
}
