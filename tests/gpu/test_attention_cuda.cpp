// CUDA attention (kernels/cuda/attention.h) against the CPU reference kernels/cpu/attention.h,
// called exactly as runtime/engine_attention.cpp calls it: one (token, query head) at a time,
// AttentionShape{1, 1, head_dim, 1/sqrt(head_dim)}, K/V pointers offset to the kv head, row
// stride = the cache row width, first = 0.
// Metric: max_i |gpu_i - cpu_i| / max_i |cpu_i|, tolerance 1e-4 for decode and prefill (both
// sides fp32, only the summation order and the exp differ: ~1e-6 seen on paper; a wrong mask,
// key or head mapping is >= 1e-2).
// Inputs are fresh random numbers each run; the seed is printed and MOE_TEST_SEED=<n> repeats a
// run. Outputs are poisoned with NaN before each launch and every element must be written.
// Tests that need a device skip with "no CUDA device: ..." when there is none; the argument
// checks run on the host.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/mla.h"
#include "gpu/gpu_test.h"

using namespace moe;
using moe::cuda::DeviceBuffer;
using moe::test::expect_close;
using moe::test::fresh_seed;
using moe::test::random_vec;

namespace {

constexpr double kTolerance = 1e-4;  // max |gpu - cpu| / max |cpu|

// One sequence's host cache: K and V [length, stride], kv head g at column g * head_dim.
struct HostSeq {
  int64_t length;
  std::vector<float> k, v;
};

// The engine's call (runtime/engine_attention.cpp): q [T, n_heads, hd] at positions
// first_pos .. first_pos + T - 1 of the cache; returns out [T, n_heads, hd].
// Under sh.window the keys from pos - window + 1 on, as the engine passes `first`; with
// host_sinks [n_heads] each head's sink (sh.sinks is their device copy).
std::vector<float> cpu_attention(const std::vector<float>& q, int64_t T, int64_t first_pos, const HostSeq& s,
                                 const cuda::AttentionShape& sh, const float* host_sinks = nullptr) {
  const int64_t hd = sh.head_dim, qd = int64_t(sh.n_heads) * hd;
  const int group = sh.n_heads / sh.n_kv_heads;
  std::vector<float> out(size_t(T * qd)), scratch;
  for (int64_t t = 0; t < T; ++t)
    for (int head = 0; head < sh.n_heads; ++head) {
      const cpu::AttentionShape shape{1, 1, int(hd), 1.0f / std::sqrt(float(hd)),
                                      host_sinks ? host_sinks + head : nullptr};
      const int kvh = head / group;
      const int64_t pos = first_pos + t;
      const int64_t first = sh.window > 0 ? std::max<int64_t>(0, pos - sh.window + 1) : 0;
      scratch.resize(size_t(pos + 1));
      cpu::attend(&q[size_t(t * qd + head * hd)], s.k.data() + kvh * hd, s.v.data() + kvh * hd, sh.kv_stride, first,
                  pos, shape, &out[size_t(t * qd + head * hd)], scratch.data());
    }
  return out;
}

HostSeq random_seq(std::mt19937_64& rng, int64_t length, const cuda::AttentionShape& sh) {
  return HostSeq{length, random_vec(rng, size_t(length * sh.kv_stride)), random_vec(rng, size_t(length * sh.kv_stride))};
}

// attention_decode over all `seqs` in one launch (grid sized for max_length); returns out
// [n_seq, n_heads, hd] from NaN-poisoned buffers.
std::vector<float> gpu_decode(const std::vector<float>& q, const std::vector<HostSeq>& seqs, int max_length,
                              const cuda::AttentionShape& sh) {
  const int n = int(seqs.size());
  std::vector<DeviceBuffer<float>> dk, dv;
  std::vector<const float*> kp, vp;
  std::vector<int32_t> len;
  for (const HostSeq& s : seqs) {
    dk.emplace_back(s.k.size());
    dv.emplace_back(s.v.size());
    dk.back().upload(s.k.data(), s.k.size());
    dv.back().upload(s.v.data(), s.v.size());
    kp.push_back(dk.back().get());
    vp.push_back(dv.back().get());
    len.push_back(int32_t(s.length));
  }
  DeviceBuffer<const float*> dkp(kp.size()), dvp(vp.size());
  dkp.upload(kp.data(), kp.size());
  dvp.upload(vp.data(), vp.size());
  DeviceBuffer<int32_t> dlen(len.size());
  dlen.upload(len.data(), len.size());
  DeviceBuffer<float> dq(q.size()), dout(q.size());
  DeviceBuffer<float> ws(size_t(cuda::attention_decode_workspace(sh, n, max_length)));
  dq.upload(q.data(), q.size());
  MOE_CUDA_CHECK(cudaMemset(dout.get(), 0xff, dout.bytes()));  // 0xffffffff is a NaN
  cuda::DecodeBatch b;
  b.n_seq = n, b.max_length = max_length;
  b.q = dq.get(), b.k = dkp.get(), b.v = dvp.get(), b.lengths = dlen.get(), b.out = dout.get(), b.workspace = ws.get();
  cuda::attention_decode(sh, b, nullptr);
  MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  std::vector<float> out(q.size());
  dout.download(out.data(), out.size());
  return out;
}

// Each sequence's new token is its last cache row: the CPU reference per sequence.
std::vector<float> cpu_decode(const std::vector<float>& q, const std::vector<HostSeq>& seqs, const cuda::AttentionShape& sh,
                              const float* host_sinks = nullptr) {
  const size_t qd = size_t(sh.n_heads) * size_t(sh.head_dim);
  std::vector<float> out;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const std::vector<float> qi(q.begin() + long(i * qd), q.begin() + long((i + 1) * qd));
    const std::vector<float> o = cpu_attention(qi, 1, seqs[i].length - 1, seqs[i], sh, host_sinks);
    out.insert(out.end(), o.begin(), o.end());
  }
  return out;
}

std::vector<float> gpu_prefill(const std::vector<float>& q, int64_t prefix, int64_t T, const HostSeq& s,
                               const cuda::AttentionShape& sh) {
  DeviceBuffer<float> dk(s.k.size()), dv(s.v.size()), dq(q.size()), dout(q.size());
  dk.upload(s.k.data(), s.k.size());
  dv.upload(s.v.data(), s.v.size());
  dq.upload(q.data(), q.size());
  MOE_CUDA_CHECK(cudaMemset(dout.get(), 0xff, dout.bytes()));
  cuda::attention_prefill(sh, dq.get(), dk.get(), dv.get(), prefix, T, dout.get(), nullptr);
  MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  std::vector<float> out(q.size());
  dout.download(out.data(), out.size());
  return out;
}

// (head_dim, query heads per kv head); 2 kv heads each, so kv head offsets are exercised.
class AttentionCuda : public ::testing::TestWithParam<std::tuple<int, int>> {
 protected:
  cuda::AttentionShape shape() const {
    const auto [hd, group] = GetParam();
    return cuda::AttentionShape{2 * group, 2, hd, int64_t(2 * hd)};
  }
};

// Key counts around the decode chunk (64) and the prefill key tile (32): 1, odd, +-1, 1000+.
const int kLengths[] = {1, 3, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000, 1031, 2049};

TEST_P(AttentionCuda, DecodeEachLengthAlone) {
  SKIP_WITHOUT_GPU();
  const cuda::AttentionShape sh = shape();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (const int len : kLengths) {
    SCOPED_TRACE("length " + std::to_string(len));
    const std::vector<HostSeq> seqs{random_seq(rng, len, sh)};
    const std::vector<float> q = random_vec(rng, size_t(sh.n_heads * sh.head_dim));
    expect_close(gpu_decode(q, seqs, len, sh), cpu_decode(q, seqs, sh), kTolerance);
  }
}

// Every length as its own sequence in one launch; max_length above the longest too (empty chunks).
TEST_P(AttentionCuda, DecodeMixedLengthsOneLaunch) {
  SKIP_WITHOUT_GPU();
  const cuda::AttentionShape sh = shape();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::vector<HostSeq> seqs;
  std::vector<int> order(std::begin(kLengths), std::end(kLengths));
  std::shuffle(order.begin(), order.end(), rng);
  for (const int len : order) seqs.push_back(random_seq(rng, len, sh));
  const std::vector<float> q = random_vec(rng, seqs.size() * size_t(sh.n_heads * sh.head_dim));
  const std::vector<float> ref = cpu_decode(q, seqs, sh);
  expect_close(gpu_decode(q, seqs, 2049, sh), ref, kTolerance);
  expect_close(gpu_decode(q, seqs, 2049 + 200, sh), ref, kTolerance);
}

TEST_P(AttentionCuda, Prefill) {
  SKIP_WITHOUT_GPU();
  const cuda::AttentionShape sh = shape();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  // (cached prefix, new tokens): single token, tiles of 16 queries / 32 keys +-1, a long prefix.
  const std::pair<int, int> cases[] = {{0, 1}, {0, 3}, {0, 17}, {7, 16}, {31, 2}, {5, 33}, {100, 47}, {0, 130}, {1000, 20}};
  for (const auto& [prefix, T] : cases) {
    SCOPED_TRACE("prefix " + std::to_string(prefix) + ", T " + std::to_string(T));
    const HostSeq s = random_seq(rng, prefix + T, sh);
    const std::vector<float> q = random_vec(rng, size_t(T * sh.n_heads * sh.head_dim));
    expect_close(gpu_prefill(q, prefix, T, s, sh), cpu_attention(q, T, prefix, s, sh), kTolerance);
  }
}

// gpt-oss's attention: a sliding window (shorter than, around and longer than a decode chunk and a
// prefill key tile) and a sink per query head, apart and together, decode and prefill.
TEST_P(AttentionCuda, WindowAndSinks) {
  SKIP_WITHOUT_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (const int window : {0, 1, 5, 32, 64, 100})
    for (const bool with_sinks : {false, true}) {
      if (window == 0 && !with_sinks) continue;  // the plain cases are the tests above
      SCOPED_TRACE("window " + std::to_string(window) + (with_sinks ? ", sinks" : ""));
      cuda::AttentionShape sh = shape();
      sh.window = window;
      std::vector<float> sinks = random_vec(rng, size_t(sh.n_heads));
      for (float& x : sinks) x *= 3.0f;  // logits around the scores' size
      DeviceBuffer<float> dsinks(sinks.size());
      dsinks.upload(sinks.data(), sinks.size());
      sh.sinks = with_sinks ? dsinks.get() : nullptr;
      const float* hs = with_sinks ? sinks.data() : nullptr;
      std::vector<HostSeq> seqs;
      for (const int len : kLengths) seqs.push_back(random_seq(rng, len, sh));
      const std::vector<float> q = random_vec(rng, seqs.size() * size_t(sh.n_heads * sh.head_dim));
      expect_close(gpu_decode(q, seqs, 2049, sh), cpu_decode(q, seqs, sh, hs), kTolerance);
      const std::pair<int, int> cases[] = {{0, 17}, {7, 40}, {100, 47}, {0, 130}, {1000, 20}};
      for (const auto& [prefix, T] : cases) {
        SCOPED_TRACE("prefix " + std::to_string(prefix) + ", T " + std::to_string(T));
        const HostSeq sq = random_seq(rng, prefix + T, sh);
        const std::vector<float> qp = random_vec(rng, size_t(T * sh.n_heads * sh.head_dim));
        expect_close(gpu_prefill(qp, prefix, T, sq, sh), cpu_attention(qp, T, prefix, sq, sh, hs), kTolerance);
      }
    }
}

// head_dim 64, 128 and 256 (real models), 16 and 32 (the HF fixtures); GQA ratios 1 to 32 (3: a
// split of the value sum that does not divide 128; 16: Qwen3.5 at head_dim 256; 32: the most
// decode shared memory).
INSTANTIATE_TEST_SUITE_P(Shapes, AttentionCuda,
                         ::testing::Combine(::testing::Values(16, 32, 64, 128, 256), ::testing::Values(1, 3, 4, 8, 16, 32)),
                         [](const auto& info) {
                           return "d" + std::to_string(std::get<0>(info.param)) + "_g" + std::to_string(std::get<1>(info.param));
                         });

// A cache row wider than the kv heads (kv_stride > n_kv_heads * head_dim), Qwen3-30B-A3B's heads.
TEST(AttentionCudaStride, PaddedRows) {
  SKIP_WITHOUT_GPU();
  const cuda::AttentionShape sh{32, 4, 128, 4 * 128 + 12};
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::vector<HostSeq> seqs{random_seq(rng, 300, sh), random_seq(rng, 65, sh)};
  const std::vector<float> q = random_vec(rng, 2 * size_t(sh.n_heads * sh.head_dim));
  expect_close(gpu_decode(q, seqs, 300, sh), cpu_decode(q, seqs, sh), kTolerance);
  const std::vector<float> qp = random_vec(rng, 40 * size_t(sh.n_heads * sh.head_dim));
  expect_close(gpu_prefill(qp, 260, 40, seqs[0], sh), cpu_attention(qp, 40, 260, seqs[0], sh), kTolerance);
}

// Hand-worked: identical keys give uniform weights, so with v_t = t (every column) over 3 keys
// the output is (0 + 1 + 2) / 3 = 1 in every column, whatever the query.
TEST(AttentionCudaHand, UniformWeightsAverageV) {
  SKIP_WITHOUT_GPU();
  const cuda::AttentionShape sh{4, 1, 64, 64};
  std::mt19937_64 rng(1);
  HostSeq s{3, std::vector<float>(3 * 64, 0.5f), std::vector<float>(3 * 64)};
  for (int t = 0; t < 3; ++t) std::fill_n(s.v.begin() + t * 64, 64, float(t));
  const std::vector<float> q = random_vec(rng, 4 * 64);
  for (const float o : gpu_decode(q, {s}, 3, sh)) EXPECT_NEAR(o, 1.0f, 1e-6f);
}

// --- MLA (kernels/cuda/mla.h) ----------------------------------------------------------------

// head_matvec: out[t, h, i] = W[h, i, :] . in[t, h, :] with strided input rows, against doubles.
TEST(MlaCuda, HeadMatvecMatchesHost) {
  SKIP_WITHOUT_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (auto [T, heads, rows, cols, pad] : {std::tuple{1, 4, 32, 16, 8}, {5, 3, 144, 32, 0}, {2, 128, 16, 512, 64}}) {
    SCOPED_TRACE("T " + std::to_string(T) + " heads " + std::to_string(heads) + " " + std::to_string(rows) + "x" +
                 std::to_string(cols));
    const int64_t hs = cols + pad, ts = int64_t(heads) * hs;  // each head's input padded, as q's nope part is
    const std::vector<float> w = random_vec(rng, int64_t(heads) * rows * cols), in = random_vec(rng, T * ts);
    std::vector<float> ref(size_t(T * heads * rows));
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < rows; ++i) {
          double acc = 0;
          for (int j = 0; j < cols; ++j) acc += double(w[size_t((h * rows + i) * cols + j)]) * in[size_t(t * ts + h * hs + j)];
          ref[size_t((t * heads + h) * rows + i)] = float(acc);
        }
    DeviceBuffer<float> dw(w.size()), din(in.size()), dout(ref.size());
    dw.upload(w.data(), w.size());
    din.upload(in.data(), in.size());
    MOE_CUDA_CHECK(cudaMemset(dout.get(), 0xff, dout.bytes()));
    cuda::head_matvec(dw.get(), heads, rows, cols, din.get(), ts, hs, T, dout.get(), nullptr);
    MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
    std::vector<float> got(ref.size());
    dout.download(got.data(), got.size());
    expect_close(got, ref, kTolerance);
  }
}

// mla_attention against a host softmax in doubles: several tokens of two sequences (one cache
// each, the tokens at different positions), latent widths that are and are not multiples of 32,
// with and without a window.
TEST(MlaCuda, AttentionMatchesHost) {
  SKIP_WITHOUT_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (auto [nh, R, rope] : {std::tuple{4, 32, 8}, {4, 144, 16}, {16, 512, 64}})
    for (int window : {0, 5}) {
      SCOPED_TRACE("heads " + std::to_string(nh) + " R " + std::to_string(R) + " rope " + std::to_string(rope) +
                   " window " + std::to_string(window));
      const int row = R + rope, qk = 16 + rope;  // q rows: 16 nope dims, then the rotary ones
      const std::vector<int> lens = {70, 9};
      const std::vector<std::pair<int, int>> toks = {{0, 0}, {0, 33}, {0, 69}, {1, 8}, {1, 3}};  // (sequence, pos)
      const int T = int(toks.size());
      std::vector<std::vector<float>> caches;
      for (int len : lens) caches.push_back(random_vec(rng, int64_t(len) * row));
      const std::vector<float> ql = random_vec(rng, int64_t(T) * nh * R), q = random_vec(rng, int64_t(T) * nh * qk);
      const float scale = 0.11f;
      std::vector<float> ref(size_t(T * nh * R));
      for (int t = 0; t < T; ++t)
        for (int h = 0; h < nh; ++h) {
          const auto [sq, pos] = toks[size_t(t)];
          const int first = window > 0 ? std::max(0, pos - window + 1) : 0;
          std::vector<double> sc;
          double mx = -1e300;
          for (int s = first; s <= pos; ++s) {
            const float* c = &caches[size_t(sq)][size_t(s * row)];
            double d = 0;
            for (int r = 0; r < R; ++r) d += double(ql[size_t((t * nh + h) * R + r)]) * c[r];
            for (int r = 0; r < rope; ++r) d += double(q[size_t((t * nh + h) * qk + 16 + r)]) * c[R + r];
            sc.push_back(d * scale);
            mx = std::max(mx, sc.back());
          }
          double sum = 0;
          for (double& v : sc) sum += (v = std::exp(v - mx));
          for (int r = 0; r < R; ++r) {
            double o = 0;
            for (int s = first; s <= pos; ++s) o += sc[size_t(s - first)] * caches[size_t(sq)][size_t(s * row + r)];
            ref[size_t((t * nh + h) * R + r)] = float(o / sum);
          }
        }
      std::vector<DeviceBuffer<float>> dc;
      for (const auto& c : caches) {
        dc.emplace_back(c.size());
        dc.back().upload(c.data(), c.size());
      }
      std::vector<const float*> table;
      std::vector<int32_t> pos;
      for (const auto& [sq, p] : toks) table.push_back(dc[size_t(sq)].get()), pos.push_back(p);
      DeviceBuffer<const float*> dtable(table.size());
      dtable.upload(table.data(), table.size());
      DeviceBuffer<int32_t> dpos(pos.size());
      dpos.upload(pos.data(), pos.size());
      DeviceBuffer<float> dql(ql.size()), dq(q.size()), dout(ref.size());
      dql.upload(ql.data(), ql.size());
      dq.upload(q.data(), q.size());
      MOE_CUDA_CHECK(cudaMemset(dout.get(), 0xff, dout.bytes()));
      cuda::MlaBatch b;
      b.T = T, b.n_heads = nh, b.latent = R, b.rope = rope, b.scale = scale, b.window = window;
      b.q_latent = dql.get(), b.q_rope = dq.get() + 16, b.q_token_stride = int64_t(nh) * qk, b.q_head_stride = qk;
      b.cache = dtable.get(), b.pos = dpos.get(), b.out = dout.get();
      cuda::mla_attention(b, nullptr);
      MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
      std::vector<float> got(ref.size());
      dout.download(got.data(), got.size());
      expect_close(got, ref, kTolerance);
      // In place, as the engine runs it: the weighted latents over the queries.
      b.out = dql.get();
      cuda::mla_attention(b, nullptr);
      MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
      dql.download(got.data(), got.size());
      expect_close(got, ref, kTolerance);
    }
}

TEST(MlaCudaArgs, RejectsBadShapes) {
  cuda::MlaBatch b;
  b.T = 1, b.n_heads = 1, b.latent = cuda::kMlaMaxLatent + 32, b.rope = 8, b.scale = 1.0f;
  EXPECT_THROW(cuda::mla_attention(b, nullptr), std::invalid_argument);  // latent too wide
  b.latent = 32, b.scale = 0.0f;
  EXPECT_THROW(cuda::mla_attention(b, nullptr), std::invalid_argument);  // no scale
  b.scale = 1.0f;
  EXPECT_THROW(cuda::mla_attention(b, nullptr), std::invalid_argument);  // null pointers
  b.T = 0;
  EXPECT_NO_THROW(cuda::mla_attention(b, nullptr));  // nothing to do
  EXPECT_THROW(cuda::head_matvec(nullptr, 1, 1, 1, nullptr, 1, 1, 1, nullptr, nullptr), std::invalid_argument);
}

// Bad arguments are refused before anything touches the device (no GPU needed).
TEST(AttentionCudaArgs, RejectsUnsupportedInput) {
  alignas(16) static float buf[64];
  cuda::DecodeBatch b;
  b.n_seq = 1, b.max_length = 1;
  const float* ptrs[1] = {buf};
  const int32_t len[1] = {1};
  b.q = buf, b.k = ptrs, b.v = ptrs, b.lengths = len, b.out = buf, b.workspace = buf;
  EXPECT_THROW(cuda::attention_decode({2, 1, 96, 192}, b, nullptr), std::invalid_argument);   // head_dim 96
  EXPECT_THROW(cuda::attention_decode({6, 4, 64, 256}, b, nullptr), std::invalid_argument);   // 6 % 4 != 0
  EXPECT_THROW(cuda::attention_decode({4, 2, 64, 64}, b, nullptr), std::invalid_argument);    // stride < 2 * 64
  EXPECT_THROW(cuda::attention_decode({4, 2, 64, 130}, b, nullptr), std::invalid_argument);   // stride % 4 != 0
  EXPECT_THROW(cuda::attention_decode({64, 1, 64, 64}, b, nullptr), std::invalid_argument);   // group 64 > 32
  b.q = buf + 1;
  EXPECT_THROW(cuda::attention_decode({4, 2, 64, 128}, b, nullptr), std::invalid_argument);   // q misaligned
  b.q = buf, b.max_length = 0;
  EXPECT_THROW(cuda::attention_decode({4, 2, 64, 128}, b, nullptr), std::invalid_argument);   // no keys
  b.n_seq = 0;
  EXPECT_NO_THROW(cuda::attention_decode({4, 2, 64, 128}, b, nullptr));                       // nothing to do
  EXPECT_THROW(cuda::attention_prefill({4, 2, 64, 128}, buf, buf, buf, -1, 1, buf, nullptr), std::invalid_argument);
  EXPECT_THROW(cuda::attention_prefill({4, 2, 64, 128}, buf, buf + 2, buf, 0, 1, buf, nullptr), std::invalid_argument);
  EXPECT_NO_THROW(cuda::attention_prefill({4, 2, 64, 128}, buf, buf, buf, 5, 0, buf, nullptr));
  EXPECT_THROW(cuda::attention_prefill({4, 2, 64, 128, 0.0f, -1}, buf, buf, buf, 0, 1, buf, nullptr),
               std::invalid_argument);  // negative window
  EXPECT_THROW(cuda::attention_prefill({4, 2, 64, 128, -0.5f}, buf, buf, buf, 0, 1, buf, nullptr),
               std::invalid_argument);  // negative scale
  try {
    cuda::attention_decode({2, 1, 96, 192}, b, nullptr);
    ADD_FAILURE() << "head_dim 96 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("head_dim must be 16, 32, 64, 128 or 256"), std::string::npos) << e.what();
  }
  // Qwen3-30B-A3B at 4096 keys: 64 chunks of 64, 32 query heads, head_dim + max + sum each.
  EXPECT_EQ(cuda::attention_decode_workspace({32, 4, 128, 512}, 1, 4096), 64 * 32 * 130);
}

}  // namespace
