// Grouped expert GEMV (kernels/cuda/qgemv_grouped.h) against a CPU reference.
//
// One MoE layer's projection: T tokens routed top-k over E experts (every token also picks a
// "hot" expert, so it gets > 8 tokens once T > 8 and runs several passes; the last two experts
// get none but are still in the work list). Output y [T * k, N], row t * k + slot.
// Reference: each expert's weights dequantized by quant/quantize.h's dequantize_row, times x,
// summed in double (not qgemv(): the single-expert GPU path must not check itself).
// Metric: max_i |gpu_i - ref_i| / max_i |ref_i| <= 1e-4, as in test_qgemv_cuda.cpp.
// Fresh random inputs each run (seed printed, MOE_TEST_SEED=<n> repeats it); y poisoned with
// NaN and every element must be written; a second run must give the same bits.
// Without a device the GPU tests skip; the argument checks run on the host.
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
#include "kernels/cuda/qgemv_variant.h"
#include "quant/quantize.h"

using namespace moe;
using moe::cuda::DeviceBuffer;
using moe::cuda::DeviceMatrix;
using moe::cuda::GroupedExpert;
using moe::cuda::QgemvGrouped;
using moe::cuda::detail::QgemvVariant;
using moe::test::fresh_seed;

namespace {

constexpr double kTolerance = 1e-4;  // max |gpu - ref| / max |ref|

struct Format {
  const char* name;
  DType dtype;
  int32_t group;
  int64_t N, K;
};
struct Routing {
  int T, E, k;
};
void PrintTo(const Format& f, std::ostream* os) { *os << f.name; }
void PrintTo(const Routing& r, std::ostream* os) { *os << "T" << r.T << "_E" << r.E << "_k" << r.k; }

// FP8 blocks with partial 128x128 scale blocks (300 x 1008); N not a multiple of the 16 rows
// of a block anywhere but 96 x 256. K = 4352: two K chunks (the second partial) in the smem
// variants' 2-token passes (qgemv_smem.cuh: 8192 floats for both tokens).
const Format kFormats[] = {
    {"q4_g128_200x384", DType::Q4, 128, 200, 384}, {"q4_g32_96x256", DType::Q4, 32, 96, 256},
    {"q4z_g64_130x256", DType::Q4Z, 64, 130, 256}, {"f8row_200x384", DType::F8E4M3, 0, 200, 384},
    {"f8blk_300x1008", DType::F8E4M3, 128, 300, 1008}, {"q4_g64_72x4352", DType::Q4, 64, 72, 4352},
};
const Routing kRoutings[] = {{1, 8, 2}, {3, 8, 6}, {17, 16, 8}, {64, 12, 4}, {64, 16, 8}};

// Per expert [N, K] with rows of different magnitudes and a few outliers, quantized.
QuantizedMatrix random_expert(std::mt19937_64& rng, const Format& f) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> row_scale(0.05f, 2.0f);
  std::vector<float> w(size_t(f.N * f.K));
  for (int64_t r = 0; r < f.N; ++r) {
    const float s = row_scale(rng);
    for (int64_t c = 0; c < f.K; ++c) w[size_t(r * f.K + c)] = s * nd(rng) * (rng() % 97 == 0 ? 8.0f : 1.0f);
  }
  QuantOptions opt;
  opt.dtype = f.dtype;
  opt.group = f.group;
  return quantize(w.data(), f.N, f.K, opt);
}

// ids [T, k]: expert 0 (hot) for every token, the other k - 1 distinct from 1 .. E - 3 (so
// experts E - 2 and E - 1 get nothing), slots shuffled so the hot one is not always slot 0.
std::vector<int32_t> random_routing(std::mt19937_64& rng, const Routing& r) {
  std::vector<int32_t> ids(size_t(r.T * r.k)), pool;
  for (int t = 0; t < r.T; ++t) {
    pool.clear();
    for (int e = 1; e < r.E - 2; ++e) pool.push_back(e);
    std::shuffle(pool.begin(), pool.end(), rng);
    pool.resize(size_t(r.k - 1));
    pool.push_back(0);
    std::shuffle(pool.begin(), pool.end(), rng);
    std::copy(pool.begin(), pool.end(), ids.begin() + t * r.k);
  }
  return ids;
}

class QgemvGroupedCuda : public ::testing::TestWithParam<std::tuple<Format, Routing, QgemvVariant>> {};

TEST_P(QgemvGroupedCuda, MatchesCpuReference) {
  SKIP_WITHOUT_GPU();
  const auto& [f, r, v] = GetParam();
  const cuda::detail::ScopedQgemvVariant use(v);
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const int64_t Y = int64_t(r.T) * r.k;

  std::vector<QuantizedMatrix> hostw;
  std::vector<std::unique_ptr<DeviceMatrix>> devw;
  for (int e = 0; e < r.E; ++e) {
    hostw.push_back(random_expert(rng, f));
    devw.push_back(std::make_unique<DeviceMatrix>(hostw.back().view()));
  }
  const std::vector<int32_t> ids = random_routing(rng, r);  // [T, k]
  std::vector<GroupedExpert> work(size_t(r.E));
  for (int e = 0; e < r.E; ++e) work[size_t(e)].w = devw[size_t(e)]->weight();
  for (int64_t i = 0; i < Y; ++i) {
    work[size_t(ids[size_t(i)])].x_rows.push_back(int32_t(i / r.k));
    work[size_t(ids[size_t(i)])].y_rows.push_back(int32_t(i));
  }
  if (r.T > 8) {
    ASSERT_GT(work[0].x_rows.size(), 8u) << "the hot expert must need several passes";
  }
  ASSERT_TRUE(work[size_t(r.E - 1)].x_rows.empty());

  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  std::vector<float> x(size_t(r.T * f.K));  // [T, K]
  for (float& v : x) v = ud(rng);

  // Reference y [Y, N]: row t * k + j = x[t] . dequant(W_ids[t, j])^T in double.
  std::vector<double> ref(size_t(Y * f.N));
  std::vector<float> row(static_cast<size_t>(f.K));
  for (int e = 0; e < r.E; ++e) {
    const auto& g = work[size_t(e)];
    if (g.x_rows.empty()) continue;
    for (int64_t n = 0; n < f.N; ++n) {
      dequantize_row(hostw[size_t(e)].view(), n, row.data());
      for (size_t i = 0; i < g.x_rows.size(); ++i) {
        const float* xt = &x[size_t(int64_t(g.x_rows[i]) * f.K)];
        double s = 0;
        for (int64_t c = 0; c < f.K; ++c) s += double(row[size_t(c)]) * double(xt[c]);
        ref[size_t(int64_t(g.y_rows[i]) * f.N + n)] = s;
      }
    }
  }

  const QgemvGrouped plan(work, r.T, Y);
  EXPECT_EQ(plan.pairs(), Y);
  DeviceBuffer<float> dx(x.size()), dy(size_t(Y * f.N));
  dx.upload(x.data(), x.size());
  std::vector<float> got[2];
  for (auto& y : got) {
    MOE_CUDA_CHECK(cudaMemset(dy.get(), 0xff, dy.bytes()));  // 0xffffffff is a NaN
    plan.run(dx.get(), dy.get(), nullptr);
    MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
    y.resize(dy.size());
    dy.download(y.data(), y.size());
  }
  std::vector<float> ref_f(ref.begin(), ref.end());  // gpu_test.h compares against float
  moe::test::expect_close(got[0], ref_f, kTolerance);
  EXPECT_EQ(std::memcmp(got[0].data(), got[1].data(), got[0].size() * sizeof(float)), 0)
      << "two runs of the same plan differ";
}

// Every kernel variant (kernels/cuda/qgemv_variant.h) at every format and routing.
INSTANTIATE_TEST_SUITE_P(Layers, QgemvGroupedCuda,
                         ::testing::Combine(::testing::ValuesIn(kFormats), ::testing::ValuesIn(kRoutings),
                                            ::testing::ValuesIn(cuda::detail::kQgemvVariants)),
                         [](const auto& info) {
                           const Routing& r = std::get<1>(info.param);
                           std::string v = cuda::detail::variant_name(std::get<2>(info.param));
                           for (char& ch : v)
                             if (ch == '-') ch = '_';
                           return std::string(std::get<0>(info.param).name) + "_T" + std::to_string(r.T) + "_E" +
                                  std::to_string(r.E) + "_k" + std::to_string(r.k) + "_" + v;
                         });

// Output rows that no pair names are left as they were; a plan with no tokens launches nothing.
TEST(QgemvGroupedCudaHand, UnnamedRowsUntouched) {
  SKIP_WITHOUT_GPU();
  const Format f{"q4_g32_96x256", DType::Q4, 32, 96, 256};
  std::mt19937_64 rng(fresh_seed());
  const QuantizedMatrix q = random_expert(rng, f);
  const DeviceMatrix dw(q.view());
  std::vector<GroupedExpert> work(2);
  work[0].w = work[1].w = dw.weight();
  work[1].x_rows = {0};
  work[1].y_rows = {2};  // y [4, N]: rows 0, 1, 3 not named
  DeviceBuffer<float> dx(size_t(f.K)), dy(size_t(4 * f.N));
  const std::vector<float> ones(size_t(f.K), 1.0f);
  dx.upload(ones.data(), ones.size());
  for (const QgemvVariant v : cuda::detail::kQgemvVariants) {
    const cuda::detail::ScopedQgemvVariant use(v);
    MOE_CUDA_CHECK(cudaMemset(dy.get(), 0xff, dy.bytes()));
    QgemvGrouped(work, 1, 4).run(dx.get(), dy.get(), nullptr);
    QgemvGrouped(std::vector<GroupedExpert>(1, GroupedExpert{dw.weight(), {}, {}}), 1, 4).run(dx.get(), dy.get(), nullptr);
    MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
    std::vector<float> y(dy.size());
    dy.download(y.data(), y.size());
    for (int64_t i = 0; i < 4 * f.N; ++i)
      EXPECT_EQ(std::isnan(y[size_t(i)]), i / f.N != 2) << cuda::detail::variant_name(v) << " element " << i;
  }
}

// Bad work lists are refused before anything touches the device (no GPU needed).
TEST(QgemvGroupedCudaArgs, RejectsBadWorkLists) {
  alignas(16) static float buf[64];
  const cuda::DeviceWeight q4{DType::Q4, buf, 4, 32, buf, nullptr, 32};
  auto make = [&](cuda::DeviceWeight w1, std::vector<int32_t> xr, std::vector<int32_t> yr) {
    return std::vector<GroupedExpert>{{q4, {0}, {0}}, {w1, std::move(xr), std::move(yr)}};
  };
  auto expect_refused = [](const std::vector<GroupedExpert>& work, int64_t T, int64_t Y, const char* what) {
    try {
      QgemvGrouped plan(work, T, Y);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  cuda::DeviceWeight other = q4;
  other.rows = 8;
  expect_refused(make(other, {1}, {1}), 2, 2, "must match");  // shape differs
  other = q4;
  other.group = 0;
  other.dtype = DType::F8E4M3;
  expect_refused(make(other, {1}, {1}), 2, 2, "must match");  // format differs
  other = q4;
  other.dtype = DType::Q4Z;
  expect_refused(make(other, {1}, {1}), 2, 2, "zero points");
  expect_refused(make(q4, {1, 0}, {1}), 2, 3, "y rows");              // lengths differ
  expect_refused(make(q4, {2}, {1}), 2, 2, "token index 2");          // T = 2
  expect_refused(make(q4, {-1}, {1}), 2, 2, "token index -1");
  expect_refused(make(q4, {1}, {2}), 2, 2, "output row 2 outside");  // Y = 2
  expect_refused(make(q4, {1}, {0}), 2, 2, "written twice");         // expert 0 writes row 0 too
  other = q4;
  other.data = reinterpret_cast<const char*>(buf) + 4;
  expect_refused(make(other, {1}, {1}), 2, 2, "16-byte aligned");
  const cuda::DeviceWeight f8{DType::F8E4M3, buf, 4, 40, buf, nullptr, 0};  // K % 16 != 0
  expect_refused({{f8, {0}, {0}}}, 1, 1, "K % 16");
  expect_refused({{q4, {0}, {0}}}, -1, 1, "T = -1");
  const cuda::DeviceWeight f32{DType::F32, buf, 4, 32, buf, nullptr, 0};
  expect_refused({{f32, {0}, {0}}}, 1, 1, "no CUDA kernel");
  EXPECT_NO_THROW(QgemvGrouped({}, 0, 0).run(nullptr, nullptr, nullptr));  // nothing to do
  EXPECT_NO_THROW(QgemvGrouped(std::vector<GroupedExpert>{{q4, {}, {}}}, 3, 3).run(nullptr, nullptr, nullptr));
}

}  // namespace
