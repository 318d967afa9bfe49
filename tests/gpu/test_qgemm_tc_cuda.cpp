// The tensor-core form of the grouped expert product (QgemvGrouped with
// GroupedMath::TensorCoreBf16, kernels/cuda/qgemm_tc.cu; Q4, Q4Z, FP8 row and block, MXFP4)
// against a CPU reference that rounds as it promises: x and the dequantized weights to bf16 (round to nearest even), products summed in
// double. What is left is the GPU's fp32 summation: max |gpu - ref| / max |ref| <= 1e-5. The
// same outputs against the unrounded (fp32) reference show the bf16 price (<= 2e-2 here).
// Also: every output written (y poisoned with NaN), the same bits twice, a row's bits
// independent of the other tokens in its tile, and the formats it refuses; and tc_gemm_rows, one
// dense weight (INT8 too) over listed rows.
// Built into test_qgemv_grouped_cuda (one executable fewer for the GPU machine's bundle).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "gpu/gpu_test.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_weight.h"
#include "kernels/cuda/qgemv_grouped.h"
#include "quant/dtype.h"
#include "quant/quantize.h"

using namespace moe;
using moe::cuda::DeviceBuffer;
using moe::cuda::DeviceMatrix;
using moe::cuda::GroupedExpert;
using moe::cuda::GroupedMath;
using moe::cuda::QgemvGrouped;
using moe::test::fresh_seed;

namespace {

struct TcCase {
  const char* name;
  DType dtype;
  int32_t group;
  int64_t N, K;
  int T, E, k;  // tokens, experts, routed per token
};
void PrintTo(const TcCase& c, std::ostream* os) { *os << c.name; }

// N not a multiple of the 64-row block (200, 130); K with a half step (288 = 4.5 x 64); an
// expert with more than 64 tokens (two items: T = 100, every token also routed to expert 0);
// a single token; exactly 64.
const TcCase kCases[] = {
    {"q4_g128_200x384_T1", DType::Q4, 128, 200, 384, 1, 8, 2},
    {"q4_g32_96x288_T17", DType::Q4, 32, 96, 288, 17, 16, 8},
    {"q4z_g64_130x256_T100", DType::Q4Z, 64, 130, 256, 100, 8, 4},
    {"q4_g64_64x512_T64", DType::Q4, 64, 64, 512, 64, 4, 4},
    {"f8row_200x384_T5", DType::F8E4M3, 0, 200, 384, 5, 8, 2},
    {"f8blk_300x288_T3", DType::F8E4M3, 128, 300, 288, 3, 4, 2},  // partial 128 x 128 blocks
    {"mx4_96x288_T9", DType::MXFP4, 32, 96, 288, 9, 8, 3},
};

float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

QuantizedMatrix random_expert(std::mt19937_64& rng, const TcCase& c) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(size_t(c.N * c.K));
  for (float& v : w) v = nd(rng) * (rng() % 97 == 0 ? 8.0f : 1.0f);
  QuantOptions opt;
  opt.dtype = c.dtype;
  opt.group = c.group;
  return quantize(w.data(), c.N, c.K, opt);
}

// Expert 0 for every token plus k - 1 others from 1 .. E - 2 (expert E - 1 gets none).
std::vector<GroupedExpert> routed_work(std::mt19937_64& rng, const TcCase& c, const std::vector<cuda::DeviceWeight>& w) {
  std::vector<GroupedExpert> work(w.size());
  for (size_t e = 0; e < w.size(); ++e) work[e].w = w[e];
  std::vector<int32_t> pool;
  for (int t = 0; t < c.T; ++t) {
    pool.clear();
    for (int e = 1; e < c.E - 1; ++e) pool.push_back(e);
    std::shuffle(pool.begin(), pool.end(), rng);
    pool.resize(size_t(c.k - 1));
    pool.push_back(0);
    for (int j = 0; j < c.k; ++j) {
      work[size_t(pool[size_t(j)])].x_rows.push_back(t);
      work[size_t(pool[size_t(j)])].y_rows.push_back(t * c.k + j);
    }
  }
  return work;
}

// y [T * k, N] in double, rounded to float; `bf16`: both operands rounded first.
std::vector<float> reference(const std::vector<QuantizedMatrix>& hostw, const std::vector<GroupedExpert>& work,
                             const std::vector<float>& x, const TcCase& c, bool bf16) {
  std::vector<double> ref(size_t(int64_t(c.T) * c.k * c.N), 0.0);
  std::vector<float> row(static_cast<size_t>(c.K));
  for (size_t e = 0; e < work.size(); ++e) {
    const GroupedExpert& g = work[e];
    for (int64_t n = 0; n < c.N && !g.x_rows.empty(); ++n) {
      dequantize_row(hostw[e].view(), n, row.data());
      for (size_t i = 0; i < g.x_rows.size(); ++i) {
        const float* xt = &x[size_t(int64_t(g.x_rows[i]) * c.K)];
        double s = 0;
        for (int64_t j = 0; j < c.K; ++j) {
          const float a = bf16 ? round_bf16(xt[j]) : xt[j], b = bf16 ? round_bf16(row[size_t(j)]) : row[size_t(j)];
          s += double(a) * double(b);
        }
        ref[size_t(int64_t(g.y_rows[i]) * c.N + n)] = s;
      }
    }
  }
  return std::vector<float>(ref.begin(), ref.end());
}

std::vector<float> run_plan(const QgemvGrouped& plan, const DeviceBuffer<float>& dx, DeviceBuffer<float>& dy) {
  MOE_CUDA_CHECK(cudaMemset(dy.get(), 0xff, dy.bytes()));  // NaN: unwritten outputs show
  plan.run(dx.get(), dy.get(), nullptr);
  MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  std::vector<float> y(dy.size());
  dy.download(y.data(), y.size());
  return y;
}

class QgemmTcCuda : public ::testing::TestWithParam<TcCase> {};

TEST_P(QgemmTcCuda, MatchesBf16Reference) {
  SKIP_WITHOUT_GPU();
  if (!cuda::tensor_core_gemm_supported(0)) GTEST_SKIP() << "device older than sm_80: no bf16 tensor cores";
  const TcCase& c = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::vector<QuantizedMatrix> hostw;
  std::vector<std::unique_ptr<DeviceMatrix>> devw;
  std::vector<cuda::DeviceWeight> w;
  for (int e = 0; e < c.E; ++e) {
    hostw.push_back(random_expert(rng, c));
    devw.push_back(std::make_unique<DeviceMatrix>(hostw.back().view()));
    w.push_back(devw.back()->weight());
  }
  const std::vector<GroupedExpert> work = routed_work(rng, c, w);
  const std::vector<float> x = moe::test::random_vec(rng, int64_t(c.T) * c.K);
  const int64_t Y = int64_t(c.T) * c.k;

  QgemvGrouped plan;
  plan.set(work, c.T, Y, nullptr, GroupedMath::TensorCoreBf16);
  EXPECT_EQ(plan.math(), GroupedMath::TensorCoreBf16);
  EXPECT_EQ(plan.pairs(), Y);
  DeviceBuffer<float> dx(x.size()), dy(size_t(Y * c.N));
  dx.upload(x.data(), x.size());
  const std::vector<float> got = run_plan(plan, dx, dy);
  moe::test::expect_close(got, reference(hostw, work, x, c, true), 1e-5);
  moe::test::expect_close(got, reference(hostw, work, x, c, false), 2e-2);
  const std::vector<float> again = run_plan(plan, dx, dy);
  EXPECT_EQ(std::memcmp(got.data(), again.data(), got.size() * sizeof(float)), 0) << "two runs differ";

  // Token 0 alone (each of its experts' tiles now hold one token): the same bits in its rows.
  std::vector<GroupedExpert> alone(work.size());
  for (size_t e = 0; e < work.size(); ++e) {
    alone[e].w = work[e].w;
    for (size_t i = 0; i < work[e].x_rows.size(); ++i)
      if (work[e].x_rows[i] == 0) alone[e].x_rows.push_back(0), alone[e].y_rows.push_back(work[e].y_rows[i]);
  }
  plan.set(alone, c.T, Y, nullptr, GroupedMath::TensorCoreBf16);
  const std::vector<float> solo = run_plan(plan, dx, dy);
  for (int j = 0; j < c.k; ++j)
    EXPECT_EQ(std::memcmp(&solo[size_t(j * c.N)], &got[size_t(j * c.N)], size_t(c.N) * sizeof(float)), 0)
        << "token 0, slot " << j << ": its row changed with the other tokens of its tile";
}

INSTANTIATE_TEST_SUITE_P(Layers, QgemmTcCuda, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

// One dense weight over listed rows (tc_gemm_rows): the even rows of 100 (two blocks of 64), against
// the same bf16 reference; the odd rows keep their NaN poison.
TEST(QgemmTcCudaRows, ListedRowsMatchBf16Reference) {
  SKIP_WITHOUT_GPU();
  if (!cuda::tensor_core_gemm_supported(0)) GTEST_SKIP() << "device older than sm_80: no bf16 tensor cores";
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (const TcCase& c : {TcCase{"i8_136x320", DType::I8, 0, 136, 320, 100, 1, 1},
                          TcCase{"f8blk_72x256", DType::F8E4M3, 128, 72, 256, 100, 1, 1},
                          TcCase{"q4_g32_64x96", DType::Q4, 32, 64, 96, 100, 1, 1}}) {
    SCOPED_TRACE(c.name);
    const std::vector<QuantizedMatrix> hostw = {random_expert(rng, c)};
    const DeviceMatrix d(hostw[0].view());
    std::vector<GroupedExpert> work(1);
    work[0].w = d.weight();
    for (int t = 0; t < c.T; t += 2) work[0].x_rows.push_back(t), work[0].y_rows.push_back(t);
    const std::vector<float> x = moe::test::random_vec(rng, int64_t(c.T) * c.K);
    std::vector<float> ref = reference(hostw, work, x, c, true);
    DeviceBuffer<float> dx(x.size()), dy(size_t(c.T * c.N));
    DeviceBuffer<int32_t> rows(work[0].x_rows.size());
    dx.upload(x.data(), x.size());
    rows.upload(work[0].x_rows.data(), rows.size());
    MOE_CUDA_CHECK(cudaMemset(dy.get(), 0xff, dy.bytes()));
    cuda::tc_gemm_rows(d.weight(), dx.get(), dy.get(), rows.get(), int64_t(rows.size()), nullptr);
    MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
    std::vector<float> got(dy.size());
    dy.download(got.data(), got.size());
    std::vector<float> even, even_ref;
    size_t odd_written = 0;
    for (int t = 0; t < c.T; ++t)
      for (int64_t n = 0; n < c.N; ++n) {
        const size_t i = size_t(t * c.N + n);
        if (t % 2 == 0) even.push_back(got[i]), even_ref.push_back(ref[i]);
        else odd_written += !std::isnan(got[i]);
      }
    moe::test::expect_close(even, even_ref, 1e-5);
    EXPECT_EQ(odd_written, 0u) << "rows outside the list were written";
  }
}

// FP8 with K % 32 != 0 has no tensor-core form: set() says so, the plan stays empty, the fp32
// GEMV takes it.
TEST(QgemmTcCudaArgs, RefusesFormatsWithoutAKernel) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(7);
  for (const TcCase& c : {TcCase{"f8row", DType::F8E4M3, 0, 64, 272, 1, 2, 1}, TcCase{"f8blk", DType::F8E4M3, 128, 64, 272, 1, 2, 1}}) {
    EXPECT_FALSE(cuda::tensor_core_format({c.dtype, nullptr, c.N, c.K, nullptr, nullptr, c.group}));
    const QuantizedMatrix q = random_expert(rng, c);
    const DeviceMatrix d(q.view());
    QgemvGrouped plan;
    const std::vector<GroupedExpert> work = {{d.weight(), {0}, {0}}};
    try {
      plan.set(work, 1, 1, nullptr, GroupedMath::TensorCoreBf16);
      ADD_FAILURE() << c.name << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("no tensor-core kernel"), std::string::npos) << e.what();
    }
    EXPECT_EQ(plan.pairs(), 0);
    plan.set(work, 1, 1, nullptr);  // the fp32 GEMV takes it
    EXPECT_EQ(plan.pairs(), 1);
  }
}

}  // namespace
