// CUDA small ops (kernels/cuda/ops.h) against the fp32 CPU reference kernels/cpu/ops.h, called
// the way runtime/engine_attention.cpp and runtime/engine_ffn.cpp call them.
//
// Metric: max_i |gpu_i - cpu_i| / max_i |cpu_i|.
//   RMSNorm (plain, fused with the residual add, per-head QK-norm), RoPE, silu_mul, residual
//   add: <= 1e-5 (both sides fp32; they differ by summation order and the ulps of expf /
//   sincosf, ~1e-7; a wrong pairing, weight or position is >= 1e-2).
//   Router: ids exactly equal (including a tie, which goes to the lower expert index), weights
//   <= 1e-6. Embedding: bit-exact (widening bf16 / fp16 is exact).
// Shapes are odd on purpose: T = 1, 3, 17; H = 96, 200, 2080 (not powers of two).
// Inputs are fresh random numbers each run; the seed is printed and MOE_TEST_SEED=<n> repeats
// a run. Outputs are poisoned with NaN (ids with -1) before each launch and every element must
// be written. Tests that need a device skip with "no CUDA device: ..." when there is none; the
// argument checks run on the host.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cpu/deltanet.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/deltanet.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_weight.h"
#include "kernels/cuda/ops.h"
#include "gpu/gpu_test.h"
#include "quant/dtype.h"

using namespace moe;
using moe::cuda::DeviceBuffer;
using moe::test::expect_close;
using moe::test::fresh_seed;
using moe::test::random_vec;

namespace {

constexpr double kTolerance = 1e-5;        // norms, RoPE, element-wise
constexpr double kRouterTolerance = 1e-6;  // router weights
constexpr float kEps = 1e-6f;

const int64_t kTokens[] = {1, 3, 17};
const int64_t kHidden[] = {96, 200, 2080};

// A generator seeded freshly, with the seed in the failure messages of the calling test.
#define SEEDED_RNG(rng)                                           \
  const uint64_t seed_ = fresh_seed();                            \
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed_));         \
  std::mt19937_64 rng(seed_)

template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& v) {
  DeviceBuffer<T> d(v.size());
  d.upload(v.data(), v.size());
  return d;
}

template <class T>
std::vector<T> to_host(const DeviceBuffer<T>& d) {
  MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  std::vector<T> v(d.size());
  d.download(v.data(), v.size());
  return v;
}

// n elements, every byte 0xff: NaN as float, -1 as int32.
template <class T>
DeviceBuffer<T> poisoned(int64_t n) {
  DeviceBuffer<T> d(static_cast<size_t>(n));
  MOE_CUDA_CHECK(cudaMemset(d.get(), 0xff, d.bytes()));
  return d;
}

// Host storage of n values in F32, BF16 or F16 and a WeightView [rows, cols] on it.
struct HostWeight {
  std::vector<uint8_t> bytes;
  WeightView view;
};
HostWeight narrow(const std::vector<float>& v, DType d, int64_t rows, int64_t cols) {
  HostWeight w;
  w.bytes.resize(v.size() * size_t(dtype_size(d)));
  for (size_t i = 0; i < v.size(); ++i) {
    if (d == DType::F32) std::memcpy(&w.bytes[4 * i], &v[i], 4);
    const uint16_t h = d == DType::BF16 ? f32_to_bf16(v[i]) : d == DType::F16 ? f32_to_f16(v[i]) : 0;
    if (d != DType::F32) std::memcpy(&w.bytes[2 * i], &h, 2);
  }
  w.view = WeightView{d, w.bytes.data(), rows, cols, nullptr, nullptr, 0};
  return w;
}

const DType kWeightTypes[] = {DType::F32, DType::BF16, DType::F16};

// --- RMSNorm ---------------------------------------------------------------------------------

// Hidden-state norm: rows = T, n = H, the weight in each storage type (widened by upload_f32).
TEST(OpsCuda, RmsNormMatchesCpu) {
  SKIP_WITHOUT_GPU();
  SEEDED_RNG(rng);
  for (DType d : kWeightTypes)
    for (int64_t T : kTokens)
      for (int64_t H : kHidden) {
        SCOPED_TRACE(std::string(dtype_name(d)) + " T=" + std::to_string(T) + " H=" + std::to_string(H));
        const std::vector<float> x = random_vec(rng, T * H, 3.0f);
        const HostWeight w = narrow(random_vec(rng, H), d, H, 1);
        std::vector<float> ref(x.size());
        for (int64_t t = 0; t < T; ++t) cpu::rmsnorm(&x[size_t(t * H)], w.view, kEps, H, &ref[size_t(t * H)]);
        const DeviceBuffer<float> dx = to_device(x), dw = cuda::upload_f32(w.view);
        DeviceBuffer<float> out = poisoned<float>(T * H);
        cuda::rmsnorm(dx.get(), dw.get(), kEps, T, H, out.get(), nullptr);
        expect_close(to_host(out), ref, kTolerance);
      }
}

// Per-head QK-norm, in place as the engine runs it: rows = T * heads, n = head_dim.
TEST(OpsCuda, QkNormPerHeadInPlaceMatchesCpu) {
  SKIP_WITHOUT_GPU();
  SEEDED_RNG(rng);
  for (int64_t T : kTokens)
    for (auto [heads, hd] : {std::pair<int64_t, int64_t>{4, 64}, {5, 128}, {3, 96}}) {
      SCOPED_TRACE("T=" + std::to_string(T) + " heads=" + std::to_string(heads) + " head_dim=" + std::to_string(hd));
      std::vector<float> q = random_vec(rng, T * heads * hd);
      const HostWeight w = narrow(random_vec(rng, hd), DType::BF16, hd, 1);
      DeviceBuffer<float> dq = to_device(q);
      const DeviceBuffer<float> dw = cuda::upload_f32(w.view);
      for (int64_t i = 0; i < T * heads; ++i) cpu::rmsnorm(&q[size_t(i * hd)], w.view, kEps, hd, &q[size_t(i * hd)]);
      cuda::rmsnorm(dq.get(), dw.get(), kEps, T * heads, hd, dq.get(), nullptr);
      expect_close(to_host(dq), q, kTolerance);
    }
}

// Fused residual add + norm: x must hold x + y afterwards, out the norm of it.
TEST(OpsCuda, AddRmsNormMatchesCpu) {
  SKIP_WITHOUT_GPU();
  SEEDED_RNG(rng);
  for (int64_t T : kTokens)
    for (int64_t H : kHidden) {
      SCOPED_TRACE("T=" + std::to_string(T) + " H=" + std::to_string(H));
      std::vector<float> x = random_vec(rng, T * H);
      const std::vector<float> y = random_vec(rng, T * H);
      const HostWeight w = narrow(random_vec(rng, H), DType::F32, H, 1);
      DeviceBuffer<float> dx = to_device(x);
      const DeviceBuffer<float> dy = to_device(y), dw = cuda::upload_f32(w.view);
      DeviceBuffer<float> out = poisoned<float>(T * H);
      cuda::add_rmsnorm(dx.get(), dy.get(), dw.get(), kEps, T, H, out.get(), nullptr);
      for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
      std::vector<float> ref(x.size());
      for (int64_t t = 0; t < T; ++t) cpu::rmsnorm(&x[size_t(t * H)], w.view, kEps, H, &ref[size_t(t * H)]);
      expect_close(to_host(dx), x, kTolerance);
      expect_close(to_host(out), ref, kTolerance);
    }
}

// --- RoPE ------------------------------------------------------------------------------------

// RoPE inverse frequencies of a 1e6 base, and T positions up to 40000 (long-context angles).
std::vector<float> rope_freqs(int hd) {
  std::vector<float> f(static_cast<size_t>(hd / 2));
  for (int i = 0; i < hd / 2; ++i) f[size_t(i)] = float(1.0 / std::pow(1e6, 2.0 * i / hd));
  return f;
}
template <class Rng>
std::vector<int32_t> random_positions(Rng& rng, int64_t T) {
  std::uniform_int_distribution<int32_t> d(0, 40000);
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int32_t& p : pos) p = d(rng);
  return pos;
}

// Positions up to 40000 (long-context angles), a 1e6 base, with and without YaRN's attention
// factor, whole heads and partial rotary (GLM-4.5's half, Qwen3-Next's quarter), rotate_half and
// interleaved pairs; the reference computes cos / sin exactly as runtime/engine_attention.cpp
// does and rotates with cpu::rope_dims.
TEST(OpsCuda, RopeMatchesCpu) {
  SKIP_WITHOUT_GPU();
  SEEDED_RNG(rng);
  for (float af : {1.0f, 1.2f})
    for (int64_t T : kTokens)
      for (auto [heads, hd, rot] : {std::tuple<int, int, int>{1, 64, 64}, {5, 128, 128}, {3, 96, 96}, {2, 200, 200},
                                    {4, 128, 64}, {3, 256, 64}, {2, 64, 2}})
        for (bool inter : {false, true}) {
          SCOPED_TRACE("af=" + std::to_string(af) + " T=" + std::to_string(T) + " heads=" + std::to_string(heads) +
                       " head_dim=" + std::to_string(hd) + " rot=" + std::to_string(rot) +
                       (inter ? " interleaved" : ""));
          const int half = rot / 2;
          const std::vector<float> inv_freq = rope_freqs(rot);
          std::vector<int32_t> pos = random_positions(rng, T);
          pos[0] = 0;  // the identity rotation (scaled by af) is a case too
          std::vector<float> v = random_vec(rng, T * heads * hd);
          DeviceBuffer<float> dv = to_device(v);
          const DeviceBuffer<float> dfreq = to_device(inv_freq);
          const DeviceBuffer<int32_t> dpos = to_device(pos);
          cuda::rope(dv.get(), dpos.get(), dfreq.get(), T, heads, {hd, rot, inter}, af, nullptr);
          std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
          for (int64_t t = 0; t < T; ++t) {
            for (int i = 0; i < half; ++i) {
              const float ang = float(pos[size_t(t)]) * inv_freq[size_t(i)];
              cs[size_t(i)] = std::cos(ang) * af;
              sn[size_t(i)] = std::sin(ang) * af;
            }
            cpu::rope_dims(&v[size_t(t * heads * hd)], heads, hd, rot, inter, cs.data(), sn.data());
          }
          expect_close(to_host(dv), v, kTolerance);
        }
}

// The fused per-head QK-norm + RoPE against the four launches it replaces (rmsnorm over the
// head rows of q and of k, then rope of each): bit for bit, also with partial rotary (the
// dims past rot_dims only normed) and interleaved pairs.
TEST(OpsCuda, QkNormRopeMatchesNormThenRopeExactly) {
  SKIP_WITHOUT_GPU();
  SEEDED_RNG(rng);
  for (int64_t T : kTokens)
    for (auto [nh, nkv, hd, rot] : {std::tuple<int, int, int, int>{4, 2, 64, 64}, {32, 4, 128, 128}, {3, 3, 96, 96},
                                    {2, 1, 256, 256}, {4, 2, 128, 64}, {2, 1, 256, 64}})
      for (bool inter : {false, true}) {
        SCOPED_TRACE("T=" + std::to_string(T) + " heads=" + std::to_string(nh) + "/" + std::to_string(nkv) +
                     " head_dim=" + std::to_string(hd) + " rot=" + std::to_string(rot) + (inter ? " interleaved" : ""));
        const cuda::RopeLayout rl{hd, rot, inter};
        const std::vector<float> inv_freq = rope_freqs(rot);
        const std::vector<int32_t> pos = random_positions(rng, T);
        const std::vector<float> q = random_vec(rng, T * nh * hd), k = random_vec(rng, T * nkv * hd);
        const std::vector<float> qw = random_vec(rng, hd), kw = random_vec(rng, hd);
        const DeviceBuffer<float> dfreq = to_device(inv_freq), dqw = to_device(qw), dkw = to_device(kw);
        const DeviceBuffer<int32_t> dpos = to_device(pos);
        DeviceBuffer<float> q1 = to_device(q), k1 = to_device(k), q2 = to_device(q), k2 = to_device(k);
        cuda::rmsnorm(q1.get(), dqw.get(), kEps, T * nh, hd, q1.get(), nullptr);
        cuda::rmsnorm(k1.get(), dkw.get(), kEps, T * nkv, hd, k1.get(), nullptr);
        cuda::rope(q1.get(), dpos.get(), dfreq.get(), T, nh, rl, 1.1f, nullptr);
        cuda::rope(k1.get(), dpos.get(), dfreq.get(), T, nkv, rl, 1.1f, nullptr);
        cuda::qk_norm_rope(q2.get(), k2.get(), dqw.get(), dkw.get(), kEps, dpos.get(), dfreq.get(), T, nh, nkv, rl, 1.1f,
                           nullptr);
        EXPECT_EQ(to_host(q2), to_host(q1));
        EXPECT_EQ(to_host(k2), to_host(k1));
      }
}

// --- Gated DeltaNet (kernels/cuda/deltanet.h) -------------------------------------------------

// The CPU's delta rule (kernels/cpu/deltanet.h, token by token) over conv rows mixed [n, C] split
// into q, k and v as runtime/engine_linear.cpp splits them; state updated; returns out [n, nv, dv].
std::vector<float> cpu_delta_rule(const std::vector<float>& mixed, int64_t n, const cuda::DeltaNetDims& d,
                                  const float* g, const float* beta, std::vector<float>& state) {
  const int64_t C = d.conv_dim(), kd = int64_t(d.n_k_heads) * d.k_dim, vd = int64_t(d.n_v_heads) * d.v_dim;
  std::vector<float> q(size_t(n * kd)), k(size_t(n * kd)), v(size_t(n * vd)), out(size_t(n * vd));
  for (int64_t t = 0; t < n; ++t) {
    std::copy_n(&mixed[size_t(t * C)], kd, &q[size_t(t * kd)]);
    std::copy_n(&mixed[size_t(t * C + kd)], kd, &k[size_t(t * kd)]);
    std::copy_n(&mixed[size_t(t * C + 2 * kd)], vd, &v[size_t(t * vd)]);
  }
  ThreadPool pool(1);
  cpu::gated_delta_recurrent(pool, q.data(), k.data(), v.data(), g, beta, n,
                             cpu::DeltaNetShape{d.n_k_heads, d.n_v_heads, d.k_dim, d.v_dim}, state.data(), out.data());
  return out;
}

// The gates, the conv with its window, the delta rule and the gated norm of one sequence's run,
// against the CPU engine's arithmetic (kernels/cpu/deltanet.h for the rule; the loops of
// runtime/engine_linear.cpp for the rest): two runs in a row, so the second starts from the
// window and state the first left.
TEST(OpsCuda, DeltaNetMatchesCpu) {
  SKIP_WITHOUT_GPU();
  SEEDED_RNG(rng);
  for (auto [nk, nv, dk, dv, K] : {std::tuple{2, 4, 16, 16, 4}, {1, 4, 16, 32, 4}, {2, 4, 128, 128, 4}}) {
    SCOPED_TRACE("nk " + std::to_string(nk) + " nv " + std::to_string(nv) + " dk " + std::to_string(dk) + " dv " +
                 std::to_string(dv));
    const cuda::DeltaNetDims d{nk, nv, dk, dv};
    const int C = int(d.conv_dim());
    const std::vector<float> w = random_vec(rng, int64_t(C) * K, 0.5f);
    const std::vector<float> alog = random_vec(rng, nv, 0.5f), dt = random_vec(rng, nv, 0.5f);
    std::vector<float> window(size_t((K - 1) * C), 0.0f), state(size_t(nv) * dk * dv, 0.0f);
    DeviceBuffer<float> dwin = to_device(window), dstate = to_device(state), dscratch(window.size());
    const DeviceBuffer<float> dw = to_device(w), dalog = to_device(alog), ddt = to_device(dt);
    for (const int64_t n : {5, 2}) {
      const std::vector<float> x = random_vec(rng, n * C);
      std::vector<float> b = random_vec(rng, n * nv), a = random_vec(rng, n * nv);
      // Host: the gates, the conv (newest input first, then the older ones), the rule.
      std::vector<float> hb = b, ha = a;
      for (int64_t i = 0; i < n * nv; ++i) {
        hb[size_t(i)] = 1.0f / (1.0f + std::exp(-hb[size_t(i)]));
        const float v = ha[size_t(i)] + dt[size_t(i % nv)];
        ha[size_t(i)] = -std::exp(alog[size_t(i % nv)]) * (v > 20.0f ? v : std::log1p(std::exp(v)));
      }
      const auto row = [&](int64_t r) { return r < K - 1 ? &window[size_t(r * C)] : &x[size_t((r - (K - 1)) * C)]; };
      std::vector<float> mixed(size_t(n * C)), next(window.size());
      for (int64_t t = 0; t < n; ++t)
        for (int c = 0; c < C; ++c) {
          float o = w[size_t(c * K + K - 1)] * row(t + K - 1)[c];
          for (int j = 0; j < K - 1; ++j) o += w[size_t(c * K + j)] * row(t + j)[c];
          mixed[size_t(t * C + c)] = o / (1.0f + std::exp(-o));
        }
      for (int j = 0; j < K - 1; ++j) std::copy_n(row(n + j), C, &next[size_t(j * C)]);
      const std::vector<float> out = cpu_delta_rule(mixed, n, d, ha.data(), hb.data(), state);
      window = next;
      // Device.
      DeviceBuffer<float> dx = to_device(x), db = to_device(b), da = to_device(a), dmixed(mixed.size()), dout(out.size());
      cuda::deltanet_gates(db.get(), da.get(), dalog.get(), ddt.get(), n, nv, nullptr);
      cuda::deltanet_conv(dwin.get(), dx.get(), n, dw.get(), C, K, dmixed.get(), dscratch.get(), nullptr);
      cuda::gated_delta_rule(dmixed.get(), n, d, da.get(), db.get(), dstate.get(), dout.get(), nullptr);
      MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
      expect_close(to_host(db), hb, kTolerance);
      expect_close(to_host(da), ha, kTolerance);
      expect_close(to_host(dmixed), mixed, kTolerance);
      expect_close(to_host(dwin), window, 0.0);
      expect_close(to_host(dout), out, 1e-4);
      expect_close(to_host(dstate), state, 1e-4);
    }
  }
}

// The chunked rule against the CPU's chunked and recurrent forms and the GPU's recurrent one:
// 150 tokens (two whole chunks of 64 and a partial one; chunks of 16 too), a state carried in.
TEST(OpsCuda, DeltaNetChunkedMatchesRecurrent) {
  SKIP_WITHOUT_GPU();
  SEEDED_RNG(rng);
  for (auto [nk, nv, dk, dv] : {std::tuple{2, 4, 16, 16}, {1, 4, 16, 32}, {2, 4, 128, 128}})
    for (const int chunk : {64, 16}) {
      SCOPED_TRACE("dk " + std::to_string(dk) + " dv " + std::to_string(dv) + " chunk " + std::to_string(chunk));
      const cuda::DeltaNetDims d{nk, nv, dk, dv};
      const int64_t n = 150, C = d.conv_dim();
      const std::vector<float> mixed = random_vec(rng, n * C), state0 = random_vec(rng, int64_t(nv) * dk * dv, 0.1f);
      std::vector<float> g = random_vec(rng, n * nv), beta = random_vec(rng, n * nv);
      for (float& x : g) x = -0.05f * std::fabs(x);            // log decays <= 0
      for (float& x : beta) x = 1.0f / (1.0f + std::exp(-x));  // betas in (0, 1)
      // The CPU's recurrent form is the reference (its chunked one agrees within 1e-5: test_deltanet).
      std::vector<float> state = state0;
      const std::vector<float> out = cpu_delta_rule(mixed, n, d, g.data(), beta.data(), state);
      const DeviceBuffer<float> dmixed = to_device(mixed), dg = to_device(g), db = to_device(beta);
      DeviceBuffer<float> dstate = to_device(state0), dout(out.size());
      DeviceBuffer<float> work(size_t(cuda::deltanet_chunk_work(d, chunk)));
      cuda::gated_delta_rule_chunked(dmixed.get(), n, d, dg.get(), db.get(), dstate.get(), dout.get(), chunk, work.get(),
                                     nullptr);
      MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
      expect_close(to_host(dout), out, 1e-4);
      expect_close(to_host(dstate), state, 1e-4);
    }
}

TEST(OpsCuda, GatedNormAndQueryGateMatchCpu) {
  SKIP_WITHOUT_GPU();
  SEEDED_RNG(rng);
  const int64_t rows = 7;
  const int n = 128;
  std::vector<float> o = random_vec(rng, rows * n);
  const std::vector<float> z = random_vec(rng, rows * n), w = random_vec(rng, n);
  DeviceBuffer<float> dO = to_device(o);
  const DeviceBuffer<float> dz = to_device(z), dw = to_device(w);
  cuda::gated_rmsnorm(dO.get(), dz.get(), dw.get(), kEps, rows, n, nullptr);
  for (int64_t r = 0; r < rows; ++r) {
    float ss = 0.0f;
    for (int i = 0; i < n; ++i) ss += o[size_t(r * n + i)] * o[size_t(r * n + i)];
    const float inv = 1.0f / std::sqrt(ss / float(n) + kEps);
    for (int i = 0; i < n; ++i) {
      const float g = z[size_t(r * n + i)];
      o[size_t(r * n + i)] = o[size_t(r * n + i)] * inv * w[size_t(i)] * (g / (1.0f + std::exp(-g)));
    }
  }
  expect_close(to_host(dO), o, kTolerance);
  // q_proj's [T, heads, 2 * hd] split into query and gate; then x * sigmoid(gate).
  const int64_t T = 3;
  const int heads = 4, hd = 32;
  const std::vector<float> qg = random_vec(rng, T * heads * 2 * hd);
  DeviceBuffer<float> dq(size_t(T * heads * hd)), dg(size_t(T * heads * hd));
  const DeviceBuffer<float> dqg = to_device(qg);
  cuda::split_query_gate(dqg.get(), T, heads, hd, dq.get(), dg.get(), nullptr);
  std::vector<float> q(size_t(T * heads * hd)), gate(q.size());
  for (int64_t i = 0; i < T * heads; ++i) {
    std::copy_n(&qg[size_t(i * 2 * hd)], hd, &q[size_t(i * hd)]);
    std::copy_n(&qg[size_t(i * 2 * hd + hd)], hd, &gate[size_t(i * hd)]);
  }
  expect_close(to_host(dq), q, 0.0);
  expect_close(to_host(dg), gate, 0.0);
  cuda::mul_sigmoid(dq.get(), dg.get(), int64_t(q.size()), nullptr);
  for (size_t i = 0; i < q.size(); ++i) q[i] *= 1.0f / (1.0f + std::exp(-gate[i]));
  expect_close(to_host(dq), q, kTolerance);
}

// --- Element-wise ----------------------------------------------------------------------------

TEST(OpsCuda, SiluMulAndAddMatchCpu) {
  SKIP_WITHOUT_GPU();
  SEEDED_RNG(rng);
  for (int64_t T : kTokens)
    for (int64_t H : kHidden) {
      const int64_t n = T * H;
      SCOPED_TRACE("n=" + std::to_string(n));
      const std::vector<float> g = random_vec(rng, n, 4.0f), u = random_vec(rng, n);
      std::vector<float> ref(static_cast<size_t>(n));
      cpu::silu_mul(g.data(), u.data(), n, ref.data());
      const DeviceBuffer<float> dg = to_device(g), du = to_device(u);
      DeviceBuffer<float> out = poisoned<float>(n);
      cuda::silu_mul(dg.get(), du.get(), n, out.get(), nullptr);
      expect_close(to_host(out), ref, kTolerance);

      DeviceBuffer<float> dx = to_device(g);
      cuda::add_inplace(dx.get(), du.get(), n, nullptr);
      std::vector<float> sum(g);
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += u[i];
      expect_close(to_host(dx), sum, kTolerance);
    }
}

// --- Router ----------------------------------------------------------------------------------

struct Routing {
  std::vector<int32_t> ids;  // [T, k]
  std::vector<float> wts;    // [T, k]
};

// The engine's router on the host (runtime/engine_ffn.cpp calls cpu::route).
Routing cpu_router(std::vector<float> logits, int64_t T, int E, int k, bool renorm) {
  Routing r{std::vector<int32_t>(size_t(T * k)), std::vector<float>(size_t(T * k))};
  cpu::route(logits.data(), T, E, k, renorm, r.ids.data(), r.wts.data());
  return r;
}

Routing gpu_router(const std::vector<float>& logits, int64_t T, int E, int k, bool renorm) {
  const DeviceBuffer<float> dl = to_device(logits);
  DeviceBuffer<int32_t> ids = poisoned<int32_t>(T * k);
  DeviceBuffer<float> wts = poisoned<float>(T * k);
  cuda::router_topk(dl.get(), T, E, k, renorm, ids.get(), wts.get(), nullptr);
  return {to_host(ids), to_host(wts)};
}

void expect_same_routing(const Routing& gpu, const Routing& cpu) {
  ASSERT_EQ(gpu.ids.size(), cpu.ids.size());
  for (size_t i = 0; i < cpu.ids.size(); ++i)
    ASSERT_EQ(gpu.ids[i], cpu.ids[i]) << "element " << i << " of [T, k] (-1: not written)";
  expect_close(gpu.wts, cpu.wts, kRouterTolerance);
}

// E and k of real routers: Mixtral (8, 2), Qwen3 (128, 8), DeepSeek-V3 (256, 8), OLMoE-ish (64, 8),
// plus E = 60 (not a multiple of 32) and k = 16, 32.
TEST(OpsCuda, RouterTopkMatchesCpu) {
  SKIP_WITHOUT_GPU();
  SEEDED_RNG(rng);
  for (bool renorm : {false, true})
    for (int64_t T : kTokens)
      for (auto [E, k] : {std::pair<int, int>{8, 2}, {60, 4}, {64, 8}, {128, 8}, {256, 8}, {128, 16}, {40, 32}, {5, 1}}) {
        SCOPED_TRACE(std::string(renorm ? "renorm" : "raw") + " T=" + std::to_string(T) + " E=" + std::to_string(E) +
                     " k=" + std::to_string(k));
        const std::vector<float> logits = random_vec(rng, T * E, 2.0f);
        expect_same_routing(gpu_router(logits, T, E, k, renorm), cpu_router(logits, T, E, k, renorm));
      }
}

// Equal logits tie; the lower expert index wins (cpu::topk, torch.topk). Hand-worked for E = 8:
// logits {1, 3, 3, 0, 3, 2, 2, 3}: top-4 is 1, 2, 4, 7 (all 3), then 5 before 6 for k = 6.
TEST(OpsCuda, RouterTiesGoToLowerIndex) {
  SKIP_WITHOUT_GPU();
  const std::vector<float> logits = {1, 3, 3, 0, 3, 2, 2, 3};
  const Routing r = gpu_router(logits, 1, 8, 6, true);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{1, 2, 4, 7, 5, 6}));
  expect_same_routing(r, cpu_router(logits, 1, 8, 6, true));
  // All equal over E = 200 (several per lane): ids 0..k-1, weights 1/k after renormalising.
  const Routing flat = gpu_router(std::vector<float>(3 * 200, 0.5f), 3, 200, 16, true);
  for (int64_t i = 0; i < 3 * 16; ++i) {
    EXPECT_EQ(flat.ids[size_t(i)], i % 16);
    EXPECT_NEAR(flat.wts[size_t(i)], 1.0f / 16, 1e-7);
  }
}

// --- Embedding -------------------------------------------------------------------------------

TEST(OpsCuda, EmbedMatchesCpuExactly) {
  SKIP_WITHOUT_GPU();
  SEEDED_RNG(rng);
  const int64_t V = 1000;
  std::uniform_int_distribution<int32_t> id_dist(0, int32_t(V - 1));
  for (DType d : kWeightTypes)
    for (int64_t T : kTokens)
      for (int64_t H : kHidden) {
        SCOPED_TRACE(std::string(dtype_name(d)) + " T=" + std::to_string(T) + " H=" + std::to_string(H));
        const HostWeight table = narrow(random_vec(rng, V * H), d, V, H);
        std::vector<int32_t> ids(static_cast<size_t>(T));
        for (int32_t& id : ids) id = id_dist(rng);
        ids.back() = int32_t(V - 1);  // the table's last row
        ids.front() = 0;
        std::vector<float> ref(size_t(T * H));
        for (int64_t t = 0; t < T; ++t) cpu::to_f32(table.view, int64_t(ids[size_t(t)]) * H, H, &ref[size_t(t * H)]);
        const DeviceBuffer<uint8_t> dtable = to_device(table.bytes);
        DeviceBuffer<int32_t> scratch(ids.size());
        DeviceBuffer<float> out = poisoned<float>(T * H);
        cuda::embed(cuda::DeviceWeight{d, dtable.get(), V, H, nullptr, nullptr, 0}, ids.data(), T, scratch.get(), out.get(), nullptr);
        const std::vector<float> got = to_host(out);
        for (size_t i = 0; i < ref.size(); ++i)
          ASSERT_EQ(f32_to_bits(got[i]), f32_to_bits(ref[i])) << "element " << i << ": gpu " << got[i] << " cpu " << ref[i];
      }
}

// --- Argument checks (host only: nothing is launched, no GPU needed) ---------------------------

TEST(OpsCudaArgs, EmbedRefusesOutOfRangeIds) {
  static float buf[64];
  static int32_t scratch[4];
  const cuda::DeviceWeight table{DType::F32, buf, 8, 8, nullptr, nullptr, 0};
  for (int32_t bad : {-1, 8, 1 << 30}) {
    const int32_t ids[3] = {0, bad, 7};
    try {
      cuda::embed(table, ids, 3, scratch, buf, nullptr);
      ADD_FAILURE() << "id " << bad << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("token 1 has id " + std::to_string(bad)), std::string::npos) << e.what();
    }
  }
  const cuda::DeviceWeight q4{DType::Q4, buf, 8, 32, nullptr, nullptr, 32};
  const int32_t ok[1] = {0};
  EXPECT_THROW(cuda::embed(q4, ok, 1, scratch, buf, nullptr), std::invalid_argument);  // quantized table
}

TEST(OpsCudaArgs, RefusesBadShapes) {
  static float buf[64];
  static int32_t ids[64];
  EXPECT_THROW(cuda::rope(buf, ids, buf, 1, 1, cuda::RopeLayout::full(7), 1.0f, nullptr), std::invalid_argument);  // odd
  EXPECT_THROW(cuda::rope(buf, ids, buf, 1, 1, {8, 10, false}, 1.0f, nullptr), std::invalid_argument);  // rot > head_dim
  EXPECT_THROW(cuda::rope(buf, ids, buf, 1, 1, {8, 3, false}, 1.0f, nullptr), std::invalid_argument);   // odd rot_dims
  EXPECT_THROW(cuda::rope(buf, ids, buf, 1, 1, {8, 0, false}, 1.0f, nullptr), std::invalid_argument);   // none rotated
  EXPECT_THROW(cuda::qk_norm_rope(buf, buf, buf, buf, kEps, ids, buf, 1, 1, 1, cuda::RopeLayout::full(7), 1.0f, nullptr),
               std::invalid_argument);
  EXPECT_THROW(cuda::qk_norm_rope(buf, nullptr, buf, buf, kEps, ids, buf, 1, 1, 1, cuda::RopeLayout::full(8), 1.0f,
                                  nullptr),
               std::invalid_argument);
  EXPECT_THROW(cuda::rmsnorm(buf, buf, kEps, -1, 8, buf, nullptr), std::invalid_argument);
  EXPECT_THROW(cuda::add_rmsnorm(buf, nullptr, buf, kEps, 1, 8, buf, nullptr), std::invalid_argument);
  EXPECT_THROW(cuda::silu_mul(buf, buf, -1, buf, nullptr), std::invalid_argument);
  EXPECT_THROW(cuda::router_topk(buf, 1, 8, 9, false, ids, buf, nullptr), std::invalid_argument);   // k > E
  EXPECT_THROW(cuda::router_topk(buf, 1, 64, 33, false, ids, buf, nullptr), std::invalid_argument); // k > 32
  EXPECT_THROW(cuda::router_topk(buf, 1, 8, 0, false, ids, buf, nullptr), std::invalid_argument);
  EXPECT_THROW(cuda::router_topk(buf, 1, cuda::kRouterMaxExperts + 1, 8, false, ids, buf, nullptr), std::invalid_argument);
  // Empty inputs are no-ops, not errors (and launch nothing).
  EXPECT_NO_THROW(cuda::rmsnorm(buf, buf, kEps, 0, 8, buf, nullptr));
  EXPECT_NO_THROW(cuda::rope(buf, ids, buf, 0, 4, cuda::RopeLayout::full(64), 1.0f, nullptr));
  EXPECT_NO_THROW(cuda::router_topk(buf, 0, 8, 2, true, ids, buf, nullptr));
  EXPECT_NO_THROW(cuda::embed(cuda::DeviceWeight{DType::BF16, buf, 8, 8, nullptr, nullptr, 0}, ids, 0, ids, buf, nullptr));
}

}  // namespace
