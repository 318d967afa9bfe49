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
// Re-planning: one object set() again and again on a non-blocking stream (QgemvGroupedReplan),
// each result against the same reference and bit-identical to a freshly constructed plan.
// Without a device the GPU tests skip; the argument checks (constructor and set()) run on the host.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
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
    {"mx4_131x2880", DType::MXFP4, 32, 131, 2880},
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

// The work list of a routing ids [T, k] over the experts w: pair (t, j) reads x row t and
// writes y row t * k + j. Every expert of w is in the list, with or without tokens.
std::vector<GroupedExpert> make_work(const std::vector<cuda::DeviceWeight>& w, const std::vector<int32_t>& ids,
                                     int k) {
  std::vector<GroupedExpert> work(w.size());
  for (size_t e = 0; e < w.size(); ++e) work[e].w = w[e];
  for (size_t i = 0; i < ids.size(); ++i) {
    work[size_t(ids[i])].x_rows.push_back(int32_t(i / size_t(k)));
    work[size_t(ids[i])].y_rows.push_back(int32_t(i));
  }
  return work;
}

// Reference y [Y, N]: row y_rows[i] of expert e = x[x_rows[i]] . dequant(W_e)^T in double,
// rounded to float (gpu_test.h compares against float); rows no pair names are 0.
std::vector<float> reference(const std::vector<const QuantizedMatrix*>& hostw, const std::vector<GroupedExpert>& work,
                             const std::vector<float>& x, const Format& f, int64_t Y) {
  std::vector<double> ref(size_t(Y * f.N), 0.0);
  std::vector<float> row(static_cast<size_t>(f.K));
  for (size_t e = 0; e < work.size(); ++e) {
    const auto& g = work[e];
    if (g.x_rows.empty()) continue;
    for (int64_t n = 0; n < f.N; ++n) {
      dequantize_row(hostw[e]->view(), n, row.data());
      for (size_t i = 0; i < g.x_rows.size(); ++i) {
        const float* xt = &x[size_t(int64_t(g.x_rows[i]) * f.K)];
        double s = 0;
        for (int64_t c = 0; c < f.K; ++c) s += double(row[size_t(c)]) * double(xt[c]);
        ref[size_t(int64_t(g.y_rows[i]) * f.N + n)] = s;
      }
    }
  }
  return std::vector<float>(ref.begin(), ref.end());
}

std::vector<float> random_x(std::mt19937_64& rng, int64_t T, int64_t K) {
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  std::vector<float> x(size_t(T * K));  // [T, K]
  for (float& v : x) v = ud(rng);
  return x;
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
  std::vector<cuda::DeviceWeight> w;
  std::vector<const QuantizedMatrix*> hw;
  hostw.reserve(size_t(r.E));
  for (int e = 0; e < r.E; ++e) {
    hostw.push_back(random_expert(rng, f));
    devw.push_back(std::make_unique<DeviceMatrix>(hostw.back().view()));
    w.push_back(devw.back()->weight());
    hw.push_back(&hostw.back());
  }
  const std::vector<int32_t> ids = random_routing(rng, r);  // [T, k]
  const std::vector<GroupedExpert> work = make_work(w, ids, r.k);
  if (r.T > 8) {
    ASSERT_GT(work[0].x_rows.size(), 8u) << "the hot expert must need several passes";
  }
  ASSERT_TRUE(work[size_t(r.E - 1)].x_rows.empty());

  const std::vector<float> x = random_x(rng, r.T, f.K);
  const std::vector<float> ref_f = reference(hw, work, x, f, Y);

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

// One QgemvGrouped re-planned with set() on a non-blocking stream, as the engine does per layer
// and decode step: routings, T (1 -> 64 -> 3 ...), expert counts and weights change, plans grow
// and shrink, some are empty. Each result against the CPU reference and bit-identical to a
// freshly constructed plan on the same inputs; no growth once the largest plan has been seen.
// Then the same steps pipelined (set/run after set/run, one sync at the end) on another object.
struct Step {
  int T, E, k;  // E = 0: an empty expert list; k = 0: E experts without tokens (Y = 2 T)
};
const Step kSteps[] = {{1, 8, 2}, {64, 16, 8}, {3, 8, 6},  {0, 0, 0},  {2, 0, 0}, {17, 16, 8},
                       {3, 12, 0}, {5, 12, 4}, {1, 12, 8}, {64, 16, 8}, {1, 8, 1}};
constexpr int kPool = 16;  // device experts to draw each step's E from
constexpr size_t kLargest = 1;  // index in kSteps of the first largest plan

// Bit-identical (NaN poison included); empty vectors compare equal.
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

class QgemvGroupedReplan : public ::testing::TestWithParam<Format> {};

TEST_P(QgemvGroupedReplan, SetRepeatedlyOnAStream) {
  SKIP_WITHOUT_GPU();
  const Format& f = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);

  std::vector<QuantizedMatrix> hostw;
  std::vector<std::unique_ptr<DeviceMatrix>> devw;
  hostw.reserve(kPool);
  for (int e = 0; e < kPool; ++e) {
    hostw.push_back(random_expert(rng, f));
    devw.push_back(std::make_unique<DeviceMatrix>(hostw.back().view()));
  }
  cudaStream_t s = nullptr;
  MOE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  const std::unique_ptr<CUstream_st, void (*)(cudaStream_t)> own_s(s, [](cudaStream_t p) { cudaStreamDestroy(p); });

  // Each step's inputs, kept for the pipelined pass.
  struct Case {
    std::vector<GroupedExpert> work;
    int64_t T, Y, pairs;
    std::unique_ptr<DeviceBuffer<float>> dx;
    std::vector<float> got;  // y [Y, N] from the re-planned object
  };
  std::vector<Case> cases;
  QgemvGrouped plan;
  EXPECT_NO_THROW(plan.run(nullptr, nullptr, s));  // the empty plan of the default constructor
  size_t largest_capacity = 0;
  for (size_t i = 0; i < std::size(kSteps); ++i) {
    const Step& st = kSteps[i];
    SCOPED_TRACE("step " + std::to_string(i) + ": T " + std::to_string(st.T) + ", E " + std::to_string(st.E) +
                 ", k " + std::to_string(st.k));
    // E distinct experts of the pool in random order: the descriptors change too.
    std::vector<int> pick(kPool);
    for (int e = 0; e < kPool; ++e) pick[size_t(e)] = e;
    std::shuffle(pick.begin(), pick.end(), rng);
    std::vector<cuda::DeviceWeight> w;
    std::vector<const QuantizedMatrix*> hw;
    for (int j = 0; j < st.E; ++j) {
      w.push_back(devw[size_t(pick[size_t(j)])]->weight());
      hw.push_back(&hostw[size_t(pick[size_t(j)])]);
    }
    Case c;
    c.T = st.T;
    c.Y = int64_t(st.T) * (st.k ? st.k : 2);
    c.pairs = int64_t(st.T) * st.k;
    c.work = st.k ? make_work(w, random_routing(rng, {st.T, st.E, st.k}), st.k) : make_work(w, {}, 1);
    const std::vector<float> x = random_x(rng, st.T, f.K);
    const std::vector<float> ref = reference(hw, c.work, x, f, c.Y);
    c.dx = std::make_unique<DeviceBuffer<float>>(std::max<size_t>(x.size(), 1));
    if (!x.empty())  // on s: cudaMemcpy from pageable memory may return before its DMA is done
      MOE_CUDA_CHECK(cudaMemcpyAsync(c.dx->get(), x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice, s));
    DeviceBuffer<float> dy(size_t(std::max<int64_t>(c.Y * f.N, 1))), dy_fresh(dy.size());

    MOE_CUDA_CHECK(cudaMemsetAsync(dy.get(), 0xff, dy.bytes(), s));  // 0xffffffff is a NaN
    MOE_CUDA_CHECK(cudaMemsetAsync(dy_fresh.get(), 0xff, dy_fresh.bytes(), s));
    plan.set(c.work, c.T, c.Y, s);
    plan.run(c.dx->get(), dy.get(), s);
    c.got.resize(size_t(c.Y * f.N));
    if (!c.got.empty())
      MOE_CUDA_CHECK(cudaMemcpyAsync(c.got.data(), dy.get(), c.got.size() * sizeof(float), cudaMemcpyDeviceToHost, s));
    MOE_CUDA_CHECK(cudaStreamSynchronize(s));  // the engine's router read-back: the upload is done

    EXPECT_EQ(plan.pairs(), c.pairs);
    if (c.pairs > 0) {
      moe::test::expect_close(c.got, ref, kTolerance);
    } else {
      for (size_t j = 0; j < c.got.size(); ++j) ASSERT_TRUE(std::isnan(c.got[j])) << "element " << j << " written";
    }
    const QgemvGrouped fresh(c.work, c.T, c.Y);
    EXPECT_EQ(fresh.pairs(), plan.pairs());
    EXPECT_EQ(fresh.weight_bytes(), plan.weight_bytes());
    EXPECT_EQ(fresh.rows(), plan.rows());
    EXPECT_EQ(fresh.cols(), plan.cols());
    fresh.run(c.dx->get(), dy_fresh.get(), s);
    std::vector<float> want(c.got.size());
    if (!want.empty())
      MOE_CUDA_CHECK(cudaMemcpyAsync(want.data(), dy_fresh.get(), want.size() * sizeof(float), cudaMemcpyDeviceToHost, s));
    MOE_CUDA_CHECK(cudaStreamSynchronize(s));
    EXPECT_TRUE(same_bits(c.got, want)) << "the re-planned object and a fresh one differ";

    if (i == kLargest) largest_capacity = plan.capacity_bytes();
    if (i >= kLargest) {
      EXPECT_EQ(plan.capacity_bytes(), largest_capacity) << "grew after the largest plan";
    }
    cases.push_back(std::move(c));
  }
  ASSERT_GT(largest_capacity, 0u);

  // Pipelined on a fresh object: set() while the previous step's run is still queued (each
  // set() waits for the previous upload itself; growth synchronises s), one sync at the end.
  // The plan is overwritten in stream order, so each run sees its own plan.
  QgemvGrouped piped;
  std::vector<DeviceBuffer<float>> ys;
  ys.reserve(cases.size());
  for (const Case& c : cases) {
    ys.emplace_back(size_t(std::max<int64_t>(c.Y * f.N, 1)));
    MOE_CUDA_CHECK(cudaMemsetAsync(ys.back().get(), 0xff, ys.back().bytes(), s));
    piped.set(c.work, c.T, c.Y, s);
    piped.run(c.dx->get(), ys.back().get(), s);
  }
  MOE_CUDA_CHECK(cudaStreamSynchronize(s));
  for (size_t i = 0; i < cases.size(); ++i) {
    std::vector<float> y(cases[i].got.size());
    ys[i].download(y.data(), y.size());
    EXPECT_TRUE(same_bits(y, cases[i].got)) << "pipelined step " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, QgemvGroupedReplan, ::testing::ValuesIn(kFormats),
                         [](const auto& info) { return std::string(info.param.name); });

// Work lists refused before anything touches the device, and the message each must contain.
alignas(16) float g_buf[64];
const cuda::DeviceWeight kQ4{DType::Q4, g_buf, 4, 32, g_buf, nullptr, 32};
struct BadList {
  std::vector<GroupedExpert> work;
  int64_t T, Y;
  const char* what;
};
std::vector<BadList> bad_lists() {
  auto make = [](cuda::DeviceWeight w1, std::vector<int32_t> xr, std::vector<int32_t> yr) {
    return std::vector<GroupedExpert>{{kQ4, {0}, {0}}, {w1, std::move(xr), std::move(yr)}};
  };
  std::vector<BadList> v;
  cuda::DeviceWeight other = kQ4;
  other.rows = 8;
  v.push_back({make(other, {1}, {1}), 2, 2, "must match"});  // shape differs
  other = kQ4;
  other.group = 0;
  other.dtype = DType::F8E4M3;
  v.push_back({make(other, {1}, {1}), 2, 2, "must match"});  // format differs
  other = kQ4;
  other.dtype = DType::Q4Z;
  v.push_back({make(other, {1}, {1}), 2, 2, "zero points"});
  v.push_back({make(kQ4, {1, 0}, {1}), 2, 3, "y rows"});              // lengths differ
  v.push_back({make(kQ4, {2}, {1}), 2, 2, "token index 2"});          // T = 2
  v.push_back({make(kQ4, {-1}, {1}), 2, 2, "token index -1"});
  v.push_back({make(kQ4, {1}, {2}), 2, 2, "output row 2 outside"});  // Y = 2
  v.push_back({make(kQ4, {1}, {0}), 2, 2, "written twice"});         // expert 0 writes row 0 too
  other = kQ4;
  other.data = reinterpret_cast<const char*>(g_buf) + 4;
  v.push_back({make(other, {1}, {1}), 2, 2, "16-byte aligned"});
  const cuda::DeviceWeight f8{DType::F8E4M3, g_buf, 4, 40, g_buf, nullptr, 0};  // K % 16 != 0
  v.push_back({{{f8, {0}, {0}}}, 1, 1, "K % 16"});
  const cuda::DeviceWeight i8{DType::I8, g_buf, 4, 64, g_buf, nullptr, 0};  // qgemv() only
  v.push_back({{{i8, {0}, {0}}}, 1, 1, "no grouped kernel"});
  v.push_back({{{kQ4, {0}, {0}}}, -1, 1, "T = -1"});
  v.push_back({{{kQ4, {0}, {0}}}, 1, -1, "Y = -1"});
  const cuda::DeviceWeight f32{DType::F32, g_buf, 4, 32, g_buf, nullptr, 0};
  v.push_back({{{f32, {0}, {0}}}, 1, 1, "no CUDA kernel"});
  return v;
}

// Bad work lists are refused before anything touches the device (no GPU needed).
TEST(QgemvGroupedCudaArgs, RejectsBadWorkLists) {
  for (const BadList& b : bad_lists()) {
    try {
      QgemvGrouped plan(b.work, b.T, b.Y);
      ADD_FAILURE() << "accepted: " << b.what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(b.what), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(QgemvGrouped({}, 0, 0).run(nullptr, nullptr, nullptr));  // nothing to do
  EXPECT_NO_THROW(QgemvGrouped(std::vector<GroupedExpert>{{kQ4, {}, {}}}, 3, 3).run(nullptr, nullptr, nullptr));
}

// set() refuses what the constructor refuses, with the same message, and keeps the previous
// plan. Plans without pairs upload nothing, so none of this needs a device.
TEST(QgemvGroupedCudaArgs, SetRejectsLikeConstructor) {
  const cuda::DeviceWeight wide{DType::Q4, g_buf, 8, 64, g_buf, nullptr, 32};
  QgemvGrouped plan;
  EXPECT_EQ(plan.pairs(), 0);
  EXPECT_EQ(plan.capacity_bytes(), 0u);
  plan.set({{wide, {}, {}}, {wide, {}, {}}}, 3, 5, nullptr);  // the previous plan: [8, 64], no pairs
  for (const BadList& b : bad_lists()) {
    std::string from_ctor, from_set;
    try {
      QgemvGrouped fresh(b.work, b.T, b.Y);
    } catch (const std::invalid_argument& e) {
      from_ctor = e.what();
    }
    try {
      plan.set(b.work, b.T, b.Y, nullptr);
    } catch (const std::invalid_argument& e) {
      from_set = e.what();
    }
    EXPECT_NE(from_ctor.find(b.what), std::string::npos) << from_ctor;
    EXPECT_EQ(from_set, from_ctor) << b.what;
    EXPECT_EQ(plan.rows(), 8) << "a refused set() must keep the previous plan";
    EXPECT_EQ(plan.cols(), 64);
  }
  EXPECT_NO_THROW(plan.run(nullptr, nullptr, nullptr));
  // Accepted plans without pairs: the shape follows the last set().
  plan.set({{kQ4, {}, {}}}, 2, 2, nullptr);
  EXPECT_EQ(plan.rows(), 4);
  EXPECT_EQ(plan.cols(), 32);
  plan.set({}, 0, 0, nullptr);
  EXPECT_EQ(plan.rows(), 0);
  EXPECT_EQ(plan.pairs(), 0);
  EXPECT_EQ(plan.weight_bytes(), 0);
  EXPECT_NO_THROW(plan.run(nullptr, nullptr, nullptr));
  EXPECT_EQ(plan.capacity_bytes(), 0u) << "nothing uploaded, nothing allocated";
  // Movable (the bench keeps plans in a vector).
  plan.set({{wide, {}, {}}}, 1, 1, nullptr);
  QgemvGrouped moved(std::move(plan));
  EXPECT_EQ(moved.rows(), 8);
  plan = std::move(moved);
  EXPECT_EQ(plan.cols(), 64);
}

}  // namespace

// set_pairs: the plan built on the device from routing ids (the GPU engine's resident decode
// step) against the same routing planned on the host as one single-token expert per pair:
// bit-identical y, and both against the CPU reference. x per token (gate, up: x [T, K]) and per
// pair (down: x [T * k, K]); two routings on one object (the second larger: the plan grows),
// every format and variant.
TEST(QgemvGroupedCudaPairs, DevicePlanMatchesHostPairPlan) {
  SKIP_WITHOUT_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (const Format& f : kFormats) {
    const int E = 12;
    std::vector<QuantizedMatrix> hostw;
    std::vector<std::unique_ptr<DeviceMatrix>> devw;
    std::vector<cuda::DeviceWeight> w;
    std::vector<const QuantizedMatrix*> hw;
    std::vector<cuda::GroupedDesc> table;
    hostw.reserve(size_t(E));
    for (int e = 0; e < E; ++e) {
      hostw.push_back(random_expert(rng, f));
      devw.push_back(std::make_unique<DeviceMatrix>(hostw.back().view()));
      w.push_back(devw.back()->weight());
      hw.push_back(&hostw.back());
      table.push_back({static_cast<const uint8_t*>(w.back().data), w.back().scales, w.back().zeros});
    }
    DeviceBuffer<cuda::GroupedDesc> dtable(table.size());
    dtable.upload(table.data(), table.size());
    QgemvGrouped on_device;
    for (const Routing r : {Routing{1, E, 4}, Routing{5, E, 4}}) {
      for (const QgemvVariant v : cuda::detail::kQgemvVariants) {
        for (const bool per_pair_x : {false, true}) {
          const cuda::detail::ScopedQgemvVariant use(v);
          SCOPED_TRACE(std::string(f.name) + " T" + std::to_string(r.T) + " " + cuda::detail::variant_name(v) +
                       (per_pair_x ? " x per pair" : " x per token"));
          const int64_t Y = int64_t(r.T) * r.k;
          const std::vector<int32_t> ids = random_routing(rng, r);
          std::vector<GroupedExpert> per_pair;  // what the engine's host path plans
          std::vector<const QuantizedMatrix*> pair_w;  // the reference's weights, entry by entry
          for (size_t i = 0; i < ids.size(); ++i) {
            per_pair.push_back({w[size_t(ids[i])], {int32_t(per_pair_x ? i : i / size_t(r.k))}, {int32_t(i)}});
            pair_w.push_back(hw[size_t(ids[i])]);
          }
          const int64_t X = per_pair_x ? Y : r.T;  // rows of x
          const std::vector<float> x = random_x(rng, X, f.K);
          const std::vector<float> ref = reference(pair_w, per_pair, x, f, Y);

          DeviceBuffer<int32_t> dids(ids.size());
          dids.upload(ids.data(), ids.size());
          DeviceBuffer<float> dx(x.size()), dy(size_t(Y * f.N));
          dx.upload(x.data(), x.size());
          std::vector<float> got[2];
          MOE_CUDA_CHECK(cudaMemset(dy.get(), 0xff, dy.bytes()));
          on_device.set_pairs(dtable.get(), dids.get(), r.T, r.k, per_pair_x, w[0], nullptr);
          EXPECT_EQ(on_device.pairs(), Y);
          on_device.run(dx.get(), dy.get(), nullptr);
          MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
          got[0].resize(dy.size());
          dy.download(got[0].data(), got[0].size());
          MOE_CUDA_CHECK(cudaMemset(dy.get(), 0xff, dy.bytes()));
          QgemvGrouped(per_pair, X, Y).run(dx.get(), dy.get(), nullptr);
          MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
          got[1].resize(dy.size());
          dy.download(got[1].data(), got[1].size());
          moe::test::expect_close(got[0], ref, kTolerance);
          EXPECT_EQ(std::memcmp(got[0].data(), got[1].data(), got[0].size() * sizeof(float)), 0)
              << "the device-built pair plan differs from the host-built one";
        }
      }
    }
  }
}

// The three plans of a layer set in one launch (gate and up per token, down per pair) run
// bit-identical to the same plans set one by one.
TEST(QgemvGroupedCudaPairs, ThreePlansInOneLaunchMatchOneByOne) {
  SKIP_WITHOUT_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const Format f{"q4_g32_96x256", DType::Q4, 32, 96, 256};
  const Routing r{3, 10, 4};
  const int64_t Y = int64_t(r.T) * r.k;
  std::vector<QuantizedMatrix> hostw;
  std::vector<std::unique_ptr<DeviceMatrix>> devw;
  std::vector<cuda::GroupedDesc> table;
  hostw.reserve(size_t(r.E));
  for (int e = 0; e < r.E; ++e) {
    hostw.push_back(random_expert(rng, f));
    devw.push_back(std::make_unique<DeviceMatrix>(hostw.back().view()));
    const cuda::DeviceWeight w = devw.back()->weight();
    table.push_back({static_cast<const uint8_t*>(w.data), w.scales, w.zeros});
  }
  DeviceBuffer<cuda::GroupedDesc> dtable(table.size());
  dtable.upload(table.data(), table.size());
  const std::vector<int32_t> ids = random_routing(rng, r);
  DeviceBuffer<int32_t> dids(ids.size());
  dids.upload(ids.data(), ids.size());
  const std::vector<float> x = random_x(rng, Y, f.K);  // Y rows: the per-pair plan reads all
  DeviceBuffer<float> dx(x.size()), dy(size_t(Y * f.N));
  dx.upload(x.data(), x.size());
  const bool per_pair[3] = {false, false, true};
  std::vector<float> got[2][3];
  QgemvGrouped together[3], alone[3];
  QgemvGrouped* plans[3] = {&together[0], &together[1], &together[2]};
  const cuda::DeviceWeight shape = devw[0]->weight();
  const QgemvGrouped::PairPlan pp[3] = {{dtable.get(), false, shape}, {dtable.get(), false, shape}, {dtable.get(), true, shape}};
  QgemvGrouped::set_pairs(plans, pp, 3, dids.get(), r.T, r.k, nullptr);
  for (int i = 0; i < 3; ++i) alone[i].set_pairs(dtable.get(), dids.get(), r.T, r.k, per_pair[i], shape, nullptr);
  for (int w = 0; w < 2; ++w)
    for (int i = 0; i < 3; ++i) {
      MOE_CUDA_CHECK(cudaMemset(dy.get(), 0xff, dy.bytes()));
      (w == 0 ? together : alone)[i].run(dx.get(), dy.get(), nullptr);
      MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
      got[w][i].resize(dy.size());
      dy.download(got[w][i].data(), got[w][i].size());
    }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got[0][i], got[1][i]) << "plan " << i;
  EXPECT_NE(got[0][0], got[0][2]) << "per-token and per-pair inputs must differ here";
}

TEST(QgemvGroupedCudaArgs, SetPairsRejectsBadArguments) {
  QgemvGrouped plan;
  const cuda::DeviceWeight q4{DType::Q4, g_buf, 8, 64, g_buf, nullptr, 32};
  const auto* table = reinterpret_cast<const cuda::GroupedDesc*>(g_buf);
  const auto* ids = reinterpret_cast<const int32_t*>(g_buf);
  EXPECT_THROW(plan.set_pairs(table, ids, 2, 0, false, q4, nullptr), std::invalid_argument);
  EXPECT_THROW(plan.set_pairs(nullptr, ids, 2, 2, false, q4, nullptr), std::invalid_argument);
  cuda::DeviceWeight f32 = q4;
  f32.dtype = DType::F32;
  EXPECT_THROW(plan.set_pairs(table, ids, 2, 2, false, f32, nullptr), std::invalid_argument);
  plan.set_pairs(table, ids, 0, 2, true, q4, nullptr);  // no pairs: nothing to launch
  EXPECT_EQ(plan.pairs(), 0);
  EXPECT_EQ(plan.rows(), 8);
  // Several plans: one bad plan refuses them all before any changes; more than 3 are refused.
  QgemvGrouped other;
  QgemvGrouped* plans[2] = {&other, &plan};
  cuda::DeviceWeight wide = q4;
  wide.rows = 16;
  const QgemvGrouped::PairPlan good_bad[2] = {{table, false, wide}, {table, false, f32}};
  EXPECT_THROW(QgemvGrouped::set_pairs(plans, good_bad, 2, ids, 0, 2, nullptr), std::invalid_argument);
  EXPECT_EQ(other.rows(), 0) << "a refused set_pairs changed a plan";
  QgemvGrouped* four[4] = {&other, &plan, &other, &plan};
  const QgemvGrouped::PairPlan pp[4] = {{table, false, q4}, {table, false, q4}, {table, false, q4}, {table, false, q4}};
  EXPECT_THROW(QgemvGrouped::set_pairs(four, pp, 4, ids, 0, 2, nullptr), std::invalid_argument);
}
