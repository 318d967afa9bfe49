// CUDA dense projections through cuBLAS (kernels/cuda/dense_gemm.h) against a CPU reference.
//
// Reference: the BF16/F16/F32 weights widened to fp32 (exact), times the activations rounded to
// the weight's type nearest-even (quant/dtype.h's f32_to_bf16 / f32_to_f16, as the kernel does
// before cuBLAS; F32 weights: activations as they are), summed in double.
// Metric: max_i |gpu_i - ref_i| / max_i |ref_i|. Tolerance 1e-3 for BF16/F16: the inputs are
// rounded alike on both sides, so only fp32 accumulation differs (order, split-K, and tensor
// cores whose fp32 sums are not IEEE-rounded); expected ~1e-6, a wrong row, column or transpose
// is O(1). 1e-5 for F32: CUDA-core fp32 (the handle never enables TF32, whose 10-bit inputs would
// give ~1e-3). A hand-worked case checks the activation rounding itself exactly.
// Inputs are fresh random numbers each run (the seed is printed, MOE_TEST_SEED=<n> repeats it);
// outputs are poisoned with NaN and every element must be written. Tests that need a device
// skip with "no CUDA device: ..."; the argument checks run on the host.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "gpu/gpu_test.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/dense_gemm.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_weight.h"
#include "quant/weight_view.h"

using namespace moe;
using moe::cuda::DeviceBuffer;
using moe::cuda::DeviceMatrix;
using moe::test::fresh_seed;

namespace {

// A host weight [N, K] in one of the dense formats, with its WeightView.
struct HostWeight {
  DType dtype;
  int64_t N, K;
  std::vector<float> f32;
  std::vector<uint16_t> half;  // BF16 / F16 bits
  WeightView view() const {
    WeightView v;
    v.dtype = dtype, v.rows = N, v.cols = K;
    v.data = dtype == DType::F32 ? static_cast<const void*>(f32.data()) : half.data();
    return v;
  }
};

HostWeight make_weight(DType dtype, int64_t N, int64_t K, const std::vector<float>& values) {
  HostWeight w{dtype, N, K, {}, {}};
  if (dtype == DType::F32) {
    w.f32 = values;
  } else {
    w.half.resize(values.size());
    for (size_t i = 0; i < values.size(); ++i) w.half[i] = dtype == DType::BF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
  }
  return w;
}

// x rounded to the weight's type, as dense_gemm does before cuBLAS.
float round_like(DType t, float v) {
  if (t == DType::BF16) return bf16_to_f32(f32_to_bf16(v));
  if (t == DType::F16) return f16_to_f32(f32_to_f16(v));
  return v;
}

// y_ref[M, N] = round(x)[M, K] . W[N, K]^T in double.
std::vector<float> reference(const std::vector<float>& x, int64_t M, const HostWeight& hw) {
  const WeightView w = hw.view();
  const int64_t N = w.rows, K = w.cols;
  std::vector<double> xr(x.size());
  for (size_t i = 0; i < x.size(); ++i) xr[i] = round_like(w.dtype, x[i]);
  std::vector<double> row(static_cast<size_t>(K));
  std::vector<float> y(size_t(M * N));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) row[size_t(k)] = load_as_f32(w.dtype, w.data, n * K + k);
    for (int64_t m = 0; m < M; ++m) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += row[size_t(k)] * xr[size_t(m * K + k)];
      y[size_t(m * N + n)] = float(s);
    }
  }
  return y;
}

// dense_gemm on the device with NaN-poisoned outputs; returns y [M, N].
std::vector<float> run_gpu(cuda::DenseGemm& g, const std::vector<float>& x, int64_t M, const DeviceMatrix& dw,
                           cudaStream_t stream) {
  const int64_t N = dw.weight().rows;
  DeviceBuffer<float> dx(x.size()), dy(size_t(M * N));
  dx.upload(x.data(), x.size());
  MOE_CUDA_CHECK(cudaMemset(dy.get(), 0xff, dy.bytes()));  // 0xffffffff is a NaN
  cuda::dense_gemm(g, dx.get(), M, dw.weight(), dy.get(), stream);
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<float> y(dy.size());
  dy.download(y.data(), y.size());
  return y;
}

double tolerance(DType t) { return t == DType::F32 ? 1e-5 : 1e-3; }

struct Case {
  const char* name;
  DType dtype;
  int64_t N, K;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }  // gtest prints parameters by name

// N not a multiple of any tile; 2080 x 768 is a Qwen3-sized projection.
const Case kCases[] = {
    {"bf16_96x256", DType::BF16, 96, 256},   {"bf16_200x384", DType::BF16, 200, 384},
    {"bf16_2080x768", DType::BF16, 2080, 768}, {"f16_96x256", DType::F16, 96, 256},
    {"f16_200x384", DType::F16, 200, 384},   {"f16_2080x768", DType::F16, 2080, 768},
    {"f32_96x256", DType::F32, 96, 256},     {"f32_200x384", DType::F32, 200, 384},
    {"f32_2080x768", DType::F32, 2080, 768},
};

class DenseGemmCuda : public ::testing::TestWithParam<std::tuple<Case, int>> {};

TEST_P(DenseGemmCuda, MatchesCpuReference) {
  SKIP_WITHOUT_GPU();
  const auto& [c, M] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const HostWeight hw = make_weight(c.dtype, c.N, c.K, test::random_vec(rng, c.N * c.K, 0.05f));
  const std::vector<float> x = test::random_vec(rng, M * c.K);
  const DeviceMatrix dw(hw.view());
  cuda::DenseGemm g;
  test::expect_close(run_gpu(g, x, M, dw, nullptr), reference(x, M, hw), tolerance(c.dtype));
}

INSTANTIATE_TEST_SUITE_P(Shapes, DenseGemmCuda,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::Values(1, 3, 17, 128)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param).name) + "_M" + std::to_string(std::get<1>(info.param));
                         });

// Hand-worked rounding: with u = half an ulp at 1 (2^-8 for BF16, 2^-11 for F16), nearest-even
// sends 1 + u to 1 and 1 + 3u to 1 + 4u. x = (1 + u, 1 + 3u) x 4, W = (1, 2) x 4 gives
// 4 * (1 + 2 (1 + 4u)) = 12 + 32u exactly (truncation would give 12 + 16u, no rounding 12 + 28u).
TEST(DenseGemmCudaHand, ActivationsRoundNearestEven) {
  SKIP_WITHOUT_GPU();
  for (const DType t : {DType::BF16, DType::F16}) {
    const float u = t == DType::BF16 ? 1.0f / 256 : 1.0f / 2048;
    for (const int64_t K : {8, 9}) {  // 9: the converter's scalar tail (x[8] = 0)
      std::vector<float> x(size_t(K), 0.0f), w(size_t(K), 0.0f);
      for (int k = 0; k < 8; ++k) x[size_t(k)] = k % 2 ? 1 + 3 * u : 1 + u, w[size_t(k)] = k % 2 ? 2.0f : 1.0f;
      const HostWeight hw = make_weight(t, 1, K, w);
      const DeviceMatrix dw(hw.view());
      cuda::DenseGemm g;
      EXPECT_EQ(run_gpu(g, x, 1, dw, nullptr)[0], 12 + 32 * u) << dtype_name(t) << " K " << K;
    }
  }
}

// One handle across growing M (the scratch is reallocated) and two streams.
TEST(DenseGemmCudaHand, HandleReusedAcrossSizesAndStreams) {
  SKIP_WITHOUT_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const HostWeight hw = make_weight(DType::BF16, 200, 384, test::random_vec(rng, 200 * 384, 0.05f));
  const DeviceMatrix dw(hw.view());
  cudaStream_t s2 = nullptr;
  MOE_CUDA_CHECK(cudaStreamCreate(&s2));
  cuda::DenseGemm g;
  const std::vector<std::pair<int, cudaStream_t>> calls = {{3, nullptr}, {128, nullptr}, {17, s2}, {130, s2}, {1, nullptr}};
  for (const auto& [M, stream] : calls) {
    const std::vector<float> x = test::random_vec(rng, M * 384);
    test::expect_close(run_gpu(g, x, M, dw, stream), reference(x, M, hw), 1e-3);
  }
  MOE_CUDA_CHECK(cudaStreamDestroy(s2));
}

// dense_gemm_same_x (Q, K and V from one input, the activations rounded once): each output
// bit-identical to dense_gemm on its own weight, for BF16, F16 and F32, M = 1 and 5.
TEST(DenseGemmCudaHand, SameInputMatchesOneByOne) {
  SKIP_WITHOUT_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  cuda::DenseGemm g;
  for (const DType t : {DType::BF16, DType::F16, DType::F32}) {
    const int64_t K = 256, N[3] = {96, 32, 32};
    std::vector<HostWeight> hw;
    std::vector<std::unique_ptr<DeviceMatrix>> dw;
    std::vector<cuda::DeviceWeight> ws;
    for (int64_t n : N) {
      hw.push_back(make_weight(t, n, K, test::random_vec(rng, n * K, 0.05f)));
      dw.push_back(std::make_unique<DeviceMatrix>(hw.back().view()));
      ws.push_back(dw.back()->weight());
    }
    for (const int64_t M : {int64_t(1), int64_t(5)}) {
      const std::vector<float> x = test::random_vec(rng, M * K);
      DeviceBuffer<float> dx(x.size()), dy[3] = {DeviceBuffer<float>(size_t(M * N[0])),
                                                 DeviceBuffer<float>(size_t(M * N[1])),
                                                 DeviceBuffer<float>(size_t(M * N[2]))};
      dx.upload(x.data(), x.size());
      float* const ys[3] = {dy[0].get(), dy[1].get(), dy[2].get()};
      cuda::dense_gemm_same_x(g, dx.get(), M, ws.data(), ys, 3, nullptr);
      MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
      for (int i = 0; i < 3; ++i) {
        std::vector<float> got(dy[i].size());
        dy[i].download(got.data(), got.size());
        EXPECT_EQ(got, run_gpu(g, x, M, *dw[size_t(i)], nullptr)) << dtype_name(t) << " M " << M << " weight " << i;
      }
    }
  }
}

TEST(DenseGemmCudaArgs, SameInputRefusesMixedFormats) {
  alignas(16) static float buf[64];
  cuda::DenseGemm g;
  const cuda::DeviceWeight a{DType::BF16, buf, 4, 16, nullptr, nullptr, 0}, b{DType::F16, buf, 4, 16, nullptr, nullptr, 0};
  cuda::DeviceWeight c = a;
  c.cols = 32;
  float* const ys[2] = {buf, buf};
  const cuda::DeviceWeight mixed[2] = {a, b}, wide[2] = {a, c};
  EXPECT_THROW(cuda::dense_gemm_same_x(g, buf, 1, mixed, ys, 2, nullptr), std::invalid_argument);
  EXPECT_THROW(cuda::dense_gemm_same_x(g, buf, 1, wide, ys, 2, nullptr), std::invalid_argument);
  EXPECT_THROW(cuda::dense_gemm_same_x(g, buf, 1, nullptr, ys, 2, nullptr), std::invalid_argument);
}

// Quantized weights are refused, pointing to qgemv; bad shapes too. No device needed: the
// arguments are checked before the cuBLAS handle is created.
TEST(DenseGemmCudaArgs, RefusesQuantizedAndBadInput) {
  alignas(16) static float buf[64];
  cuda::DenseGemm g;
  for (const DType t : {DType::Q4, DType::Q4Z, DType::F8E4M3, DType::I8}) {
    const cuda::DeviceWeight w{t, buf, 4, 32, buf, reinterpret_cast<const uint8_t*>(buf), t == DType::Q4 || t == DType::Q4Z ? 32 : 0};
    try {
      cuda::dense_gemm(g, buf, 1, w, buf, nullptr);
      ADD_FAILURE() << dtype_name(t) << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("a quantized dense layer uses qgemv"), std::string::npos) << e.what();
    }
  }
  cuda::DeviceWeight w{DType::BF16, buf, 4, 16, nullptr, nullptr, 0};
  EXPECT_THROW(cuda::dense_gemm(g, buf, -1, w, buf, nullptr), std::invalid_argument);      // negative M
  EXPECT_THROW(cuda::dense_gemm(g, buf + 1, 1, w, buf, nullptr), std::invalid_argument);   // x misaligned
  EXPECT_THROW(cuda::dense_gemm(g, nullptr, 1, w, buf, nullptr), std::invalid_argument);   // x missing
  w.cols = int64_t(1) << 31;
  EXPECT_THROW(cuda::dense_gemm(g, buf, 1, w, buf, nullptr), std::invalid_argument);       // K beyond int
  w.cols = 16;
  w.data = nullptr;
  EXPECT_THROW(cuda::dense_gemm(g, buf, 1, w, buf, nullptr), std::invalid_argument);       // no data
  EXPECT_NO_THROW(cuda::dense_gemm(g, buf, 0, cuda::DeviceWeight{DType::BF16, buf, 4, 16, nullptr, nullptr, 0}, buf, nullptr));
}

}  // namespace
