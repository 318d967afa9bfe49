// The gated delta rule (kernels/cpu/deltanet.h): the chunked form equals the token-by-token
// recurrence (outputs and final state) across chunk boundaries, with grouped value heads and a
// carried-in state; splitting a sequence anywhere and carrying the state gives the same output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/deltanet.h"

using moe::cpu::DeltaNetShape;

namespace {

moe::ThreadPool& pool() {
  static moe::ThreadPool p(3);  // more threads than cores: uneven head splits
  return p;
}

struct Inputs {
  std::vector<float> q, k, v, g, beta, state;
};

Inputs random_inputs(int64_t T, const DeltaNetShape& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  Inputs in;
  in.q.resize(size_t(T * s.n_k_heads * s.k_dim));
  in.k.resize(in.q.size());
  in.v.resize(size_t(T * s.n_v_heads * s.v_dim));
  in.g.resize(size_t(T * s.n_v_heads));
  in.beta.resize(in.g.size());
  in.state.resize(size_t(s.state_floats()));
  for (auto* vec : {&in.q, &in.k, &in.v, &in.state}) std::generate(vec->begin(), vec->end(), [&] { return n(rng); });
  for (auto& x : in.g) x = -0.5f * u(rng);  // log decays in (-0.5, 0]
  for (auto& x : in.beta) x = u(rng);
  return in;
}

double rel(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num = std::max(num, double(std::fabs(a[i] - b[i]))), den = std::max(den, double(std::fabs(b[i])));
  return num / den;
}

}  // namespace

TEST(DeltaNet, ChunkedEqualsRecurrent) {
  // v_dim 8: the recurrence by heads; v_dim 32: by 16-column tiles (every real model) when T > 1.
  for (const DeltaNetShape s : {DeltaNetShape{2, 4, 16, 8}, DeltaNetShape{2, 4, 32, 32}}) {
    for (int64_t T : {1, 2, 5, 64, 65, 150}) {
      const Inputs in = random_inputs(T, s, uint64_t(T));
      Inputs a = in, b = in;
      std::vector<float> oa(in.v.size()), ob(in.v.size());
      moe::cpu::gated_delta_recurrent(pool(), a.q.data(), a.k.data(), in.v.data(), in.g.data(), in.beta.data(), T, s,
                                      a.state.data(), oa.data());
      moe::cpu::gated_delta_chunked(pool(), b.q.data(), b.k.data(), in.v.data(), in.g.data(), in.beta.data(), T, s,
                                    b.state.data(), ob.data(), 64);
      EXPECT_LT(rel(ob, oa), 1e-5) << "T=" << T << " v_dim=" << s.v_dim;
      EXPECT_LT(rel(b.state, a.state), 1e-5) << "T=" << T << " v_dim=" << s.v_dim;
      std::printf("[ metric ] v_dim=%d T=%lld chunked vs recurrent: output %.2e, state %.2e\n", s.v_dim, (long long)T,
                  rel(ob, oa), rel(b.state, a.state));
    }
  }
}

TEST(DeltaNet, SplittingTheSequenceCarriesTheState) {
  const DeltaNetShape s{1, 2, 8, 8};
  const int64_t T = 100, cut = 37;
  const Inputs in = random_inputs(T, s, 7);
  Inputs whole = in;
  std::vector<float> ow(in.v.size());
  moe::cpu::gated_delta_chunked(pool(), whole.q.data(), whole.k.data(), in.v.data(), in.g.data(), in.beta.data(), T, s,
                                whole.state.data(), ow.data(), 16);
  Inputs parts = in;
  std::vector<float> op(in.v.size());
  const int64_t qk = s.n_k_heads * s.k_dim, vd = s.n_v_heads * s.v_dim;
  moe::cpu::gated_delta_chunked(pool(), parts.q.data(), parts.k.data(), in.v.data(), in.g.data(), in.beta.data(), cut, s,
                                parts.state.data(), op.data(), 16);
  for (int64_t t = cut; t < T; ++t)  // then decode token by token
    moe::cpu::gated_delta_recurrent(pool(), parts.q.data() + t * qk, parts.k.data() + t * qk, in.v.data() + t * vd,
                                    in.g.data() + t * s.n_v_heads, in.beta.data() + t * s.n_v_heads, 1, s,
                                    parts.state.data(), op.data() + t * vd);
  EXPECT_LT(rel(op, ow), 1e-5);
  EXPECT_LT(rel(parts.state, whole.state), 1e-5);
}

TEST(DeltaNet, ZeroBetaLeavesOnlyTheDecay) {
  // beta = 0: nothing is written; the state only decays and the output reads it.
  const DeltaNetShape s{1, 1, 4, 4};
  Inputs in = random_inputs(3, s, 3);
  std::fill(in.beta.begin(), in.beta.end(), 0.0f);
  const std::vector<float> s0 = in.state;
  std::vector<float> o(in.v.size());
  moe::cpu::gated_delta_chunked(pool(), in.q.data(), in.k.data(), in.v.data(), in.g.data(), in.beta.data(), 3, s,
                                in.state.data(), o.data());
  const float decay = std::exp(in.g[0] + in.g[1] + in.g[2]);
  for (size_t i = 0; i < s0.size(); ++i) EXPECT_NEAR(in.state[i], s0[i] * decay, 1e-5f);
}
