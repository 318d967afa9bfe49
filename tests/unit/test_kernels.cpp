// CPU kernels against straightforward double-precision references.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <numeric>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <fstream>
#include <random>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/kv_convert.h"
#include "kernels/cpu/qmatmul.h"
#include "kernels/cpu/ops.h"

using namespace moe;

namespace {

std::vector<float> randn(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Relative L2 error ||a - b|| / ||b||.
double rel_err(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

}  // namespace

class MatmulTest : public ::testing::TestWithParam<std::tuple<DType, int64_t, int64_t, int64_t>> {};

TEST_P(MatmulTest, MatchesReference) {
  const auto [dt, M, N, K] = GetParam();
  const auto x = randn(size_t(M * K), 1), wf = randn(size_t(N * K), 2), bf = randn(size_t(N), 3);
  std::vector<uint16_t> w16(wf.size()), b16(bf.size());
  std::vector<float> wq(wf.size()), bq(bf.size());  // the weights as the kernel sees them
  for (size_t i = 0; i < wf.size(); ++i) {
    w16[i] = dt == DType::BF16 ? f32_to_bf16(wf[i]) : f32_to_f16(wf[i]);
    wq[i] = dt == DType::F32 ? wf[i] : dt == DType::BF16 ? bf16_to_f32(w16[i]) : f16_to_f32(w16[i]);
  }
  for (size_t i = 0; i < bf.size(); ++i) {
    b16[i] = dt == DType::BF16 ? f32_to_bf16(bf[i]) : f32_to_f16(bf[i]);
    bq[i] = dt == DType::F32 ? bf[i] : dt == DType::BF16 ? bf16_to_f32(b16[i]) : f16_to_f32(b16[i]);
  }
  const void* wp = dt == DType::F32 ? static_cast<const void*>(wf.data()) : w16.data();
  const void* bp = dt == DType::F32 ? static_cast<const void*>(bf.data()) : b16.data();
  std::vector<double> ref(size_t(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = bq[size_t(n)];
      for (int64_t k = 0; k < K; ++k) s += double(x[size_t(m * K + k)]) * wq[size_t(n * K + k)];
      ref[size_t(m * N + n)] = s;
    }
  ThreadPool pool(2);
  std::vector<float> y(size_t(M * N), NAN);  // poisoned: every element must be written
  cpu::matmul(pool, x.data(), M, WeightView{dt, wp, N, K}, y.data(), WeightView{dt, bp, N, 1});
  for (float v : y) ASSERT_TRUE(std::isfinite(v));
  EXPECT_LT(rel_err(y, ref), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatmulTest,
                         ::testing::Combine(::testing::Values(DType::F32, DType::BF16, DType::F16),
                                            ::testing::Values(1, 3, 17), ::testing::Values(1, 33, 257),
                                            ::testing::Values(7, 64, 1000)));

// A token's row must not depend on how many tokens share the matmul (batch invariance): dot4
// sums each row exactly as dot does, so 1, 4 or 7 rows give bit-identical results.
TEST(Kernels, Dot4IsFourDotsBitForBit) {
  for (int64_t n : {1, 15, 16, 17, 100, 2048}) {
    const auto a = randn(size_t(4 * n), 3), b = randn(size_t(n), 4);
    const float* rows[4] = {a.data(), a.data() + n, a.data() + 2 * n, a.data() + 3 * n};
    float out[4];
    cpu::dot4(rows, b.data(), n, out);
    for (int r = 0; r < 4; ++r) EXPECT_EQ(out[r], cpu::dot(rows[r], b.data(), n)) << "n " << n << " row " << r;
  }
}

TEST(Kernels, DenseMatmulRowsDoNotDependOnTheBatch) {
  ThreadPool pool(2);
  const int64_t N = 37, K = 96, M = 7;
  const auto wf = randn(size_t(N * K), 5), x = randn(size_t(M * K), 6);
  std::vector<uint16_t> wb(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &wf[i], 4);
    wb[i] = uint16_t(u >> 16);
  }
  const WeightView w{DType::BF16, wb.data(), N, K};
  std::vector<float> all(size_t(M * N));
  std::vector<float> one(static_cast<size_t>(N));
  cpu::matmul(pool, x.data(), M, w, all.data());
  for (int64_t m = 0; m < M; ++m) {
    cpu::matmul(pool, x.data() + m * K, 1, w, one.data());
    for (int64_t n = 0; n < N; ++n) EXPECT_EQ(all[size_t(m * N + n)], one[size_t(n)]) << m << "," << n;
  }
}

// swiglu_ffn_many with gpt-oss's biases and clamped activation, several experts in its two
// parallel sections, equals each expert's steps run alone (matmul + bias, the formula, matmul +
// bias) bit for bit, for MXFP4 and BF16 weights and for one and several rows of x.
TEST(Kernels, SwigluManyWithBiasesAndClampEqualsEachExpertAlone) {
  ThreadPool pool(2);
  const int64_t H = 64, I = 96;
  const cpu::ClampedSwiglu clamp{7.0f, 1.702f};
  std::mt19937_64 g(11);
  for (DType dt : {DType::MXFP4, DType::BF16})
    for (int64_t n : {int64_t(1), int64_t(5)}) {
      struct Expert {
        std::vector<uint8_t> data[3], scales[3];
        std::vector<uint16_t> bf[3];
        WeightView w[3];
        std::vector<float> bias[3];
      };
      std::vector<Expert> ex(3);
      for (Expert& e : ex)
        for (int k = 0; k < 3; ++k) {
          const int64_t rows = k == 2 ? H : I, cols = k == 2 ? I : H;
          if (dt == DType::MXFP4) {
            e.data[k].resize(size_t(rows * cols / 2));
            for (auto& b : e.data[k]) b = uint8_t(g());
            e.scales[k].resize(size_t(rows * cols / 32));
            for (auto& b : e.scales[k]) b = uint8_t(120 + g() % 6);
            e.w[k] = WeightView{DType::MXFP4, e.data[k].data(), rows, cols, e.scales[k].data(), nullptr, 32};
          } else {
            const auto f = randn(size_t(rows * cols), g());
            e.bf[k].resize(f.size());
            for (size_t i = 0; i < f.size(); ++i) {
              uint32_t u;
              std::memcpy(&u, &f[i], 4);
              e.bf[k][i] = uint16_t(u >> 16);
            }
            e.w[k] = WeightView{DType::BF16, e.bf[k].data(), rows, cols};
          }
          e.bias[k] = randn(size_t(rows), g());
        }
      const auto x = randn(size_t(n * H), 21);
      std::vector<std::vector<float>> out(ex.size(), std::vector<float>(size_t(n * H)));
      std::vector<cpu::FfnJob> jobs;
      for (size_t i = 0; i < ex.size(); ++i) {
        cpu::FfnJob j{ex[i].w[0], ex[i].w[1], ex[i].w[2], n, x.data(), out[i].data()};
        j.gate_bias = ex[i].bias[0].data(), j.up_bias = ex[i].bias[1].data(), j.down_bias = ex[i].bias[2].data();
        j.clamp = &clamp;
        jobs.push_back(j);
      }
      cpu::swiglu_ffn_many(pool, jobs, I);
      for (size_t i = 0; i < ex.size(); ++i) {
        const auto f32 = [](const std::vector<float>& b) { return WeightView{DType::F32, b.data(), int64_t(b.size()), 1}; };
        std::vector<float> gt(size_t(n * I)), up(size_t(n * I)), want(size_t(n * H));
        cpu::matmul(pool, x.data(), n, ex[i].w[0], gt.data(), f32(ex[i].bias[0]));
        cpu::matmul(pool, x.data(), n, ex[i].w[1], up.data(), f32(ex[i].bias[1]));
        for (size_t k = 0; k < gt.size(); ++k) {
          const float a = std::min(gt[k], clamp.limit), b = std::clamp(up[k], -clamp.limit, clamp.limit);
          gt[k] = (b + 1.0f) * (a / (1.0f + std::exp(-a * clamp.alpha)));
        }
        cpu::matmul(pool, gt.data(), n, ex[i].w[2], want.data(), f32(ex[i].bias[2]));
        for (size_t k = 0; k < want.size(); ++k)
          ASSERT_EQ(out[i][k], want[k]) << dtype_name(dt) << " n=" << n << " expert " << i << " element " << k;
      }
      // Without the clamp: silu(gate) * up, as swiglu_ffn computes it.
      jobs.resize(1);
      jobs[0].gate_bias = jobs[0].up_bias = jobs[0].down_bias = nullptr;
      jobs[0].clamp = nullptr;
      std::vector<float> plain(size_t(n * H));
      cpu::swiglu_ffn_many(pool, jobs, I);
      cpu::swiglu_ffn(pool, ex[0].w[0], ex[0].w[1], ex[0].w[2], n, I, x.data(), plain.data());
      EXPECT_EQ(plain, out[0]);
    }
}

TEST(Kernels, RmsNormMatchesFormula) {
  const auto x = randn(37, 4), w = randn(37, 5);
  std::vector<float> out(37);
  cpu::rmsnorm(x.data(), WeightView{DType::F32, w.data(), 37, 1}, 1e-5f, 37, out.data());
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  const double inv = 1.0 / std::sqrt(ss / 37 + 1e-5);
  for (int i = 0; i < 37; ++i) EXPECT_NEAR(out[size_t(i)], x[size_t(i)] * inv * w[size_t(i)], 1e-5);
}

TEST(Kernels, RopeRotatesHalfPairs) {
  // One head of dim 4: pairs (0,2) and (1,3). A quarter turn maps (a, b) -> (-b, a).
  std::vector<float> v = {1, 2, 3, 4};
  const float c[2] = {0, 1}, s[2] = {1, 0};
  cpu::rope(v.data(), 1, 4, c, s);
  EXPECT_FLOAT_EQ(v[0], -3);
  EXPECT_FLOAT_EQ(v[2], 1);
  EXPECT_FLOAT_EQ(v[1], 2);  // angle 0 leaves the second pair alone
  EXPECT_FLOAT_EQ(v[3], 4);
}

TEST(Kernels, SoftmaxAndTopk) {
  std::vector<float> x = {1, 3, 3, -2, 0.5f};
  int idx[3];
  cpu::topk(x.data(), 5, 3, idx);
  EXPECT_EQ(idx[0], 1);  // tie between 1 and 2 goes to the lower index
  EXPECT_EQ(idx[1], 2);
  EXPECT_EQ(idx[2], 0);
  cpu::softmax(x.data(), 5);
  double s = 0;
  for (float v : x) s += v;
  EXPECT_NEAR(s, 1.0, 1e-6);
  EXPECT_NEAR(x[1] / x[0], std::exp(2.0), 1e-4);
}

TEST(Kernels, AttentionMatchesNaiveGqa) {
  const int nh = 1, hd = 24, pos = 10, kv_heads = 2;
  const int64_t stride = kv_heads * hd;
  const auto q = randn(hd, 6), k = randn(size_t((pos + 1) * stride), 7), v = randn(size_t((pos + 1) * stride), 8);
  const cpu::AttentionShape s{nh, 1, hd, 1.0f / std::sqrt(float(hd))};
  for (int64_t first : {0, 4}) {
    std::vector<float> out(hd, NAN), scratch(pos + 1);
    // Head reads kv head 1 (offset hd within each row).
    cpu::attend(q.data(), k.data() + hd, v.data() + hd, stride, first, pos, s, out.data(), scratch.data());
    std::vector<double> p(pos + 1, 0.0), ref(hd, 0.0);
    double mx = -1e300, z = 0;
    for (int t = int(first); t <= pos; ++t) {
      double d = 0;
      for (int i = 0; i < hd; ++i) d += double(q[size_t(i)]) * k[size_t(t * stride + hd + i)];
      p[size_t(t)] = d * s.scale;
      mx = std::max(mx, p[size_t(t)]);
    }
    for (int t = int(first); t <= pos; ++t) z += (p[size_t(t)] = std::exp(p[size_t(t)] - mx));
    for (int t = int(first); t <= pos; ++t)
      for (int i = 0; i < hd; ++i) ref[size_t(i)] += p[size_t(t)] / z * v[size_t(t * stride + hd + i)];
    EXPECT_LT(rel_err(out, ref), 1e-6) << "first=" << first;
  }
}

// attend_group (the engine's path: the query heads of one kv head together; AVX-512 or AVX2 where the
// CPU has it) against attend per head: odd group sizes, long and short rows, windows, sinks, and
// a head_dim the AVX-512 kernel does not take (24).
TEST(Kernels, AttendGroupMatchesAttendPerHead) {
  uint64_t seed = 20;
  for (int hd : {24, 64, 128, 256})
    for (int n_q : {1, 3, 6, 8})
      for (int pos : {0, 17, 300})
        for (int64_t first : {int64_t(0), int64_t(pos / 2)})
          for (bool with_sinks : {false, true}) {
            SCOPED_TRACE("hd " + std::to_string(hd) + " n_q " + std::to_string(n_q) + " pos " + std::to_string(pos) +
                         " first " + std::to_string(first) + (with_sinks ? " sinks" : ""));
            const int64_t stride = 2 * hd;  // two kv heads per row; the group reads the second
            const auto q = randn(size_t(n_q * hd), ++seed), k = randn(size_t((pos + 1) * stride), ++seed),
                       v = randn(size_t((pos + 1) * stride), ++seed), sinks = randn(size_t(n_q), ++seed);
            const float scale = 1.0f / std::sqrt(float(hd));
            std::vector<float> got(size_t(n_q * hd), NAN), want(size_t(n_q * hd), NAN);
            std::vector<float> scratch(size_t(n_q * (pos + 1)));
            cpu::attend_group(q.data(), n_q, k.data() + hd, v.data() + hd, stride, first, pos, hd, scale,
                              with_sinks ? sinks.data() : nullptr, got.data(), scratch.data());
            for (int g = 0; g < n_q; ++g) {
              const cpu::AttentionShape s{1, 1, hd, scale, with_sinks ? &sinks[size_t(g)] : nullptr};
              cpu::attend(&q[size_t(g * hd)], k.data() + hd, v.data() + hd, stride, first, pos, s, &want[size_t(g * hd)],
                          scratch.data());
            }
            for (float x : got) ASSERT_TRUE(std::isfinite(x));
            EXPECT_LT(rel_err(got, std::vector<double>(want.begin(), want.end())), 2e-6);
          }
}

// attend_group_half reads a bf16 / f16 cache in place. Widening is exact and the arithmetic is
// the fp32 kernel's, so its output must equal attend_group over the same rows widened first, bit
// for bit. Without a vector kernel (AVX-512 or AVX2) for the shape it must decline, doing nothing.
TEST(Kernels, AttendGroupHalfEqualsAttendGroupOnWidenedRows) {
  uint64_t seed = 40;
  for (DType t : {DType::BF16, DType::F16})
    for (int hd : {24, 64, 128})
      for (int n_q : {1, 4, 6})
        for (int pos : {0, 21, 300})
          for (bool with_sinks : {false, true}) {
            SCOPED_TRACE(std::string(dtype_name(t)) + " hd " + std::to_string(hd) + " n_q " + std::to_string(n_q) +
                         " pos " + std::to_string(pos) + (with_sinks ? " sinks" : ""));
            const int64_t stride = 2 * hd, first = pos / 3;
            const auto q = randn(size_t(n_q * hd), ++seed), kf = randn(size_t((pos + 1) * stride), ++seed),
                       vf = randn(size_t((pos + 1) * stride), ++seed), sinks = randn(size_t(n_q), ++seed);
            std::vector<uint16_t> kh(kf.size()), vh(vf.size());
            cpu::kv_narrow(t, kf.data(), int64_t(kf.size()), kh.data());
            cpu::kv_narrow(t, vf.data(), int64_t(vf.size()), vh.data());
            std::vector<float> kw(kf.size()), vw(vf.size());
            cpu::kv_widen(t, kh.data(), stride, 0, pos + 1, 0, stride, kw.data());
            cpu::kv_widen(t, vh.data(), stride, 0, pos + 1, 0, stride, vw.data());
            const float scale = 1.0f / std::sqrt(float(hd));
            const float* sk = with_sinks ? sinks.data() : nullptr;
            std::vector<float> got(size_t(n_q * hd), NAN), want(size_t(n_q * hd), NAN);
            std::vector<float> scratch(size_t(n_q * (pos + 1)));
            const bool ran = cpu::attend_group_half(q.data(), n_q, kh.data() + hd, vh.data() + hd, t, stride, first, pos, hd,
                                                    scale, sk, got.data(), scratch.data());
            ASSERT_EQ(ran, cpu::attend_group_vectorized(n_q, hd));
            if (!ran) {
              for (float x : got) ASSERT_TRUE(std::isnan(x)) << "declined, yet wrote the output";
              continue;
            }
            cpu::attend_group(q.data(), n_q, kw.data() + hd, vw.data() + hd, stride, first, pos, hd, scale, sk,
                              want.data(), scratch.data());
            for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "element " << i;
          }
  std::vector<uint16_t> rows(64, 0);
  std::vector<float> q(16, 1.0f), out(16, NAN), scratch(4);
  EXPECT_FALSE(cpu::attend_group_half(q.data(), 1, rows.data(), rows.data(), DType::F8E4M3, 16, 0, 0, 16, 1.0f, nullptr,
                                      out.data(), scratch.data()));
}

// attend_rows: up to 4 consecutive tokens of one head share the cached rows. Each token's output
// must equal attend_group's (or attend_group_half's) for that token alone, bit for bit, whatever
// the block: so a prompt gives the same results however a batch splits it. Positions on both
// sides of the kernel's 16-key blocks, fp32 and half caches, with and without a sink.
TEST(Kernels, AttendRowsEqualsAttendGroupPerToken) {
  uint64_t seed = 60;
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (int hd : {64, 128, 256})
      for (int rows : {1, 2, 3, 4})
        for (int64_t p0 : {0, 5, 13, 15, 16, 29, 31, 47, 300})
          for (bool with_sink : {false, true}) {
            SCOPED_TRACE(std::string(dtype_name(t)) + " hd " + std::to_string(hd) + " rows " + std::to_string(rows) +
                         " first pos " + std::to_string(p0) + (with_sink ? " sink" : ""));
            const int64_t stride = 3 * hd, qs = 2 * hd, n = p0 + rows;  // the head is the second of three
            const auto q = randn(size_t(rows * qs), ++seed), kf = randn(size_t(n * stride), ++seed),
                       vf = randn(size_t(n * stride), ++seed), sink = randn(1, ++seed);
            std::vector<uint16_t> kh(kf.size()), vh(vf.size());
            std::vector<float> kw = kf, vw = vf;
            if (t != DType::F32) {
              cpu::kv_narrow(t, kf.data(), int64_t(kf.size()), kh.data());
              cpu::kv_narrow(t, vf.data(), int64_t(vf.size()), vh.data());
              cpu::kv_widen(t, kh.data(), stride, 0, n, 0, stride, kw.data());
              cpu::kv_widen(t, vh.data(), stride, 0, n, 0, stride, vw.data());
            }
            const void* k = t == DType::F32 ? static_cast<const void*>(kf.data() + hd) : kh.data() + hd;
            const void* v = t == DType::F32 ? static_cast<const void*>(vf.data() + hd) : vh.data() + hd;
            int64_t last[4];
            for (int r = 0; r < rows; ++r) last[r] = p0 + r;
            const float scale = 1.0f / std::sqrt(float(hd));
            const float* sk = with_sink ? sink.data() : nullptr;
            std::vector<float> got(size_t(rows * qs), NAN), scratch(size_t(rows * n));
            const bool ran = cpu::attend_rows(q.data(), qs, rows, k, v, t, stride, 0, last, hd, scale, sk, got.data(), qs,
                                              scratch.data());
            ASSERT_EQ(ran, cpu::active_isa() == cpu::Isa::Avx512);
            if (!ran) continue;
            for (int r = 0; r < rows; ++r) {
              std::vector<float> want(size_t(hd), NAN), s1(static_cast<size_t>(n));
              cpu::attend_group(&q[size_t(r * qs)], 1, kw.data() + hd, vw.data() + hd, stride, 0, last[r], hd, scale, sk,
                                want.data(), s1.data());
              for (int d = 0; d < hd; ++d) ASSERT_EQ(got[size_t(r * qs + d)], want[size_t(d)]) << "row " << r << " dim " << d;
            }
          }
}

// Attention over a cache kept in pages (kernels/cpu/kv_rows.h; runtime/kv_cache.h shares pages
// between sequences) must equal attention over the same rows in one buffer, bit for bit: a
// sequence's tokens may not depend on where its rows happen to live. Pages of 4 and 16 rows at
// shuffled addresses, windows that start inside a page, every stored type, both kernels and the
// scalar path.
namespace {

// Rows [0, n) of `flat` (stride elements each, es bytes per element) copied into pages of
// 2^shift rows, the pages in a shuffled order in one arena so that neighbours are not adjacent.
struct Paged {
  std::vector<unsigned char> arena;
  std::vector<const void*> pages;
  cpu::KvRows rows(int shift, int64_t stride, int64_t col) const { return {pages.data(), shift, stride, col}; }
};

Paged page(const void* flat, int64_t n, int64_t stride, size_t es, int shift, uint64_t seed) {
  const int64_t per = int64_t(1) << shift, np = (n + per - 1) / per;
  const size_t page_bytes = size_t(per * stride) * es;
  Paged p;
  p.arena.assign(size_t(np) * page_bytes, 0xee);
  std::vector<int64_t> slot(static_cast<size_t>(np));
  std::iota(slot.begin(), slot.end(), 0);
  std::shuffle(slot.begin(), slot.end(), std::mt19937_64(seed));
  for (int64_t i = 0; i < np; ++i) {
    unsigned char* dst = &p.arena[size_t(slot[size_t(i)]) * page_bytes];
    const int64_t rows = std::min(per, n - i * per);
    std::copy_n(static_cast<const unsigned char*>(flat) + size_t(i * per * stride) * es, size_t(rows * stride) * es, dst);
    p.pages.push_back(dst);
  }
  return p;
}

}  // namespace

TEST(AttentionPaged, GroupAndRowsEqualTheContiguousKernels) {
  uint64_t seed = 90;
  for (DType t : {DType::F32, DType::BF16, DType::F16})
    for (int hd : {24, 64, 128})
      for (int shift : {2, 4})
        for (int n_q : {1, 4, 6})
          for (int pos : {0, 15, 16, 37, 200}) {
            const int64_t first = pos / 3;  // a window start inside a page
            SCOPED_TRACE(std::string(dtype_name(t)) + " hd " + std::to_string(hd) + " page " +
                         std::to_string(1 << shift) + " n_q " + std::to_string(n_q) + " pos " + std::to_string(pos));
            const int64_t stride = 2 * hd, n = pos + 1;
            const auto q = randn(size_t(4 * n_q * hd), ++seed), kf = randn(size_t(n * stride), ++seed),
                       vf = randn(size_t(n * stride), ++seed), sinks = randn(size_t(n_q), ++seed);
            const size_t es = size_t(dtype_size(t));
            std::vector<unsigned char> kb(size_t(n * stride) * es), vb(kb.size());
            cpu::kv_narrow(t, kf.data(), n * stride, kb.data());
            cpu::kv_narrow(t, vf.data(), n * stride, vb.data());
            const Paged kp = page(kb.data(), n, stride, es, shift, ++seed), vp = page(vb.data(), n, stride, es, shift, ++seed);
            const void* kflat = kb.data();
            const void* vflat = vb.data();
            const float scale = 1.0f / std::sqrt(float(hd));
            std::vector<float> scratch(size_t(4 * n_q * n));

            // Widening reads the same values from pages as from the buffer.
            std::vector<float> wf(size_t((n - first) * hd)), wp(wf.size());
            cpu::kv_widen(t, kb.data(), stride, first, n - first, hd, hd, wf.data());
            cpu::kv_widen(t, kp.rows(shift, stride, hd), first, n - first, hd, wp.data());
            ASSERT_EQ(wf, wp);

            // attend_group, the second kv head's columns, with sinks.
            std::vector<float> want(size_t(n_q * hd), NAN), got(want.size(), NAN);
            const bool ran_flat = cpu::attend_group(q.data(), n_q, cpu::flat_rows(kflat, stride, hd),
                                                    cpu::flat_rows(vflat, stride, hd), t, first, pos, hd, scale,
                                                    sinks.data(), want.data(), scratch.data());
            const bool ran_paged = cpu::attend_group(q.data(), n_q, kp.rows(shift, stride, hd), vp.rows(shift, stride, hd),
                                                     t, first, pos, hd, scale, sinks.data(), got.data(), scratch.data());
            ASSERT_EQ(ran_flat, ran_paged);
            ASSERT_EQ(ran_flat, t == DType::F32 || cpu::attend_group_vectorized(n_q, hd));
            if (ran_flat) {
              for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "group element " << i;
            }

            // attend_rows: up to 4 consecutive tokens ending at pos.
            const int R = int(std::min<int64_t>(4, n));
            int64_t last[4];
            for (int r = 0; r < R; ++r) last[r] = pos - (R - 1) + r;
            std::vector<float> rw(size_t(R * hd), NAN), rg(rw.size(), NAN);
            const bool rows_flat = cpu::attend_rows(q.data(), hd, R, cpu::flat_rows(kflat, stride, hd),
                                                    cpu::flat_rows(vflat, stride, hd), t, 0, last, hd, scale, nullptr,
                                                    rw.data(), hd, scratch.data());
            const bool rows_paged = cpu::attend_rows(q.data(), hd, R, kp.rows(shift, stride, hd),
                                                     vp.rows(shift, stride, hd), t, 0, last, hd, scale, nullptr,
                                                     rg.data(), hd, scratch.data());
            ASSERT_EQ(rows_flat, rows_paged);
            if (rows_flat) {
              for (size_t i = 0; i < rg.size(); ++i) ASSERT_EQ(rg[i], rw[i]) << "rows element " << i;
            }
          }
}


TEST(ThreadPool, CoversRangeExactlyOnce) {
  ThreadPool pool(3);
  for (int64_t n : {1, 2, 5, 100, 1001}) {
    std::vector<int> hits(size_t(n), 0);
    pool.parallel_for(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) ++hits[size_t(i)];
    });
    for (int h : hits) ASSERT_EQ(h, 1);
  }
}

// Workers spin between jobs and sleep when idle: jobs right after each other and jobs after the
// workers fell asleep must both run every chunk exactly once.
TEST(ThreadPool, RunsJobsBackToBackAndAfterSleeping) {
  ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  for (int round = 0; round < 3; ++round) {
    for (int j = 0; j < 500; ++j)
      pool.parallel_for(30, 1, [&](int64_t b, int64_t e) { sum.fetch_add(e - b); });
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // far past the spin: workers sleep
    pool.parallel_for(30, 1, [&](int64_t b, int64_t e) { sum.fetch_add(e - b); });
  }
  EXPECT_EQ(sum.load(), 3 * 501 * 30);
}

// parallel_for_tail: contiguous shares, then pieces of the shared tail claimed by whichever thread
// is free. Every index exactly once, no piece under the grain (but the last), whatever the
// thread count, length, grain and tail; with one slow thread the others take the tail.
TEST(ThreadPool, TailCoversRangeExactlyOnce) {
  for (int threads : {1, 2, 3}) {
    for (int tail : {0, 2, 4, 8}) {
      ThreadPool pool(threads);
      for (int64_t n : {1, 2, 7, 100, 1001})
        for (int64_t grain : {1, 5, 64}) {
          std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
          std::atomic<int> short_pieces{0};
          pool.parallel_for_tail(n, grain, tail, [&](int64_t b, int64_t e) {
            if (e - b < grain && e != n) short_pieces.fetch_add(1);
            for (int64_t i = b; i < e; ++i) hits[size_t(i)].fetch_add(1);
          });
          for (int64_t i = 0; i < n; ++i) {
            ASSERT_EQ(hits[size_t(i)].load(), 1) << "threads " << threads << " tail " << tail << " n " << n << " i " << i;
          }
          if (tail > 1) {
            EXPECT_EQ(short_pieces.load(), 0) << "n " << n << " grain " << grain;
          }
        }
    }
  }
  ThreadPool pool(2);
  std::atomic<int> slow_calls{0}, fast_calls{0};
  const auto slow = std::this_thread::get_id();
  bool first = true;
  pool.parallel_for_tail(64, 1, 2, [&](int64_t b, int64_t) {
    if (b == 0 && first) {  // the caller's share starts at 0: it is held up, the worker takes the tail
      first = false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    (std::this_thread::get_id() == slow ? slow_calls : fast_calls).fetch_add(1);
  });
  EXPECT_EQ(slow_calls.load(), 1) << "the held-up caller should find the tail taken";
  EXPECT_GT(fast_calls.load(), 1);
}

// An exception on the calling thread's chunk reaches the caller only after the workers are done
// with the job (they still hold a reference to it), and the pool stays usable.
TEST(ThreadPool, CallerExceptionWaitsForWorkers) {
  ThreadPool pool(2);
  std::atomic<int> worker_done{0};
  EXPECT_THROW(pool.parallel_for(2, 1,
                                 [&](int64_t b, int64_t) {
                                   if (b == 0) throw std::runtime_error("chunk 0");
                                   std::this_thread::sleep_for(std::chrono::milliseconds(20));
                                   worker_done = 1;
                                 }),
               std::runtime_error);
  EXPECT_EQ(worker_done.load(), 1);
  int64_t covered = 0;
  pool.parallel_for(10, 1, [&](int64_t b, int64_t e) { __atomic_add_fetch(&covered, e - b, __ATOMIC_RELAXED); });
  EXPECT_EQ(covered, 10);
}

// When the system cannot create the threads (here: an address-space limit too small for
// their stacks), the pool must throw a clear error, not hang or terminate. Runs in a child
// process so the limit does not touch the test runner; alarm() turns a hang into a failure.
TEST(ThreadPool, ThreadCreationFailureThrows) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(30);
    size_t vm_pages = 0;
    std::ifstream("/proc/self/statm") >> vm_pages;
    const rlim_t limit = rlim_t(vm_pages) * rlim_t(sysconf(_SC_PAGESIZE)) + (rlim_t(128) << 20);
    const rlimit rl{limit, limit};
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(4);
    try {
      ThreadPool pool(1000);  // 1000 stacks of 8 MiB cannot fit in 128 MiB more
      _exit(2);
    } catch (const std::runtime_error& e) {
      _exit(std::strstr(e.what(), "cannot start 1000 CPU threads") ? 0 : 3);
    } catch (...) {
      _exit(5);
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: no error, 3: wrong message, 4: setrlimit failed, 5: other exception";
}
