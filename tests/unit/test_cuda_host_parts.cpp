// The host-callable parts of the GPU kernels against the CPU engine's, without a GPU
// (tests/gpu/test_ops_cuda.cpp checks the kernels themselves where a GPU is):
// - the RoPE pairing (kernels/cuda/rope_pair.h) against cpu::rope_dims: every rotated dim in
//   exactly one pair, the dims past rot_dims untouched, the same rotation for whole heads,
//   partial rotary and interleaved pairs;
// - gpt-oss's clamped SwiGLU (kernels/cuda/swiglu.h) against cpu::clamped_swiglu.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "kernels/cpu/ops.h"
#include "kernels/cuda/rope_pair.h"
#include "kernels/cuda/swiglu.h"

namespace moe {
namespace {

TEST(RopePairs, CoverTheRotatedDimsOnce) {
  for (auto [hd, rot] : {std::pair{64, 64}, {128, 64}, {256, 64}, {64, 2}, {96, 32}})
    for (bool inter : {false, true}) {
      SCOPED_TRACE(std::to_string(hd) + "/" + std::to_string(rot) + (inter ? " interleaved" : ""));
      std::vector<int> seen(static_cast<size_t>(hd), 0);
      for (int p = 0; p < rot / 2; ++p) {
        const cuda::RopePair at = cuda::rope_pair(p, rot, inter);
        ASSERT_TRUE(at.a >= 0 && at.a < rot && at.b >= 0 && at.b < rot) << "pair " << p;
        ++seen[size_t(at.a)];
        ++seen[size_t(at.b)];
      }
      for (int i = 0; i < hd; ++i) EXPECT_EQ(seen[size_t(i)], i < rot ? 1 : 0) << "dim " << i;
    }
}

TEST(RopePairs, RotateAsTheCpuEngine) {
  for (auto [heads, hd, rot] : {std::tuple{2, 64, 64}, {3, 128, 64}, {1, 256, 64}, {2, 32, 16}})
    for (bool inter : {false, true}) {
      SCOPED_TRACE(std::to_string(hd) + "/" + std::to_string(rot) + (inter ? " interleaved" : ""));
      std::vector<float> v(static_cast<size_t>(heads * hd)), cs(static_cast<size_t>(rot / 2)), sn(cs.size());
      for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37f * float(i) + 0.1f);
      for (size_t i = 0; i < cs.size(); ++i) {
        cs[i] = std::cos(1.3f * float(i + 1));
        sn[i] = std::sin(1.3f * float(i + 1));
      }
      std::vector<float> ref = v;
      cpu::rope_dims(ref.data(), heads, hd, rot, inter, cs.data(), sn.data());
      for (int h = 0; h < heads; ++h)  // the kernels' loop: one (head, pair) per thread
        for (int p = 0; p < rot / 2; ++p) {
          float* x = &v[size_t(h * hd)];
          const cuda::RopePair at = cuda::rope_pair(p, rot, inter);
          const float a = x[at.a], b = x[at.b];
          x[at.a] = a * cs[size_t(p)] - b * sn[size_t(p)];
          x[at.b] = b * cs[size_t(p)] + a * sn[size_t(p)];
        }
      for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], ref[i], 1e-6f) << "element " << i;
    }
}

TEST(ClampedSwiglu, AsTheCpuEngine) {
  // gpt-oss's limit and alpha, and values on both sides of the clamps (and at them).
  const cpu::ClampedSwiglu c{7.0f, 1.702f};
  std::vector<float> g, u;
  for (float x : {-20.0f, -7.0f, -6.99f, -1.5f, -0.1f, 0.0f, 0.3f, 2.0f, 6.99f, 7.0f, 7.01f, 30.0f})
    for (float y : {-9.0f, -7.0f, -1.0f, 0.0f, 0.5f, 7.0f, 12.0f}) {
      g.push_back(x);
      u.push_back(y);
    }
  std::vector<float> ref(g.size());
  cpu::clamped_swiglu(g.data(), u.data(), int64_t(g.size()), c, ref.data());
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_EQ(cuda::clamped_swiglu_one(g[i], u[i], c.limit, c.alpha), ref[i]) << "gate " << g[i] << ", up " << u[i];
}

}  // namespace
}  // namespace moe
