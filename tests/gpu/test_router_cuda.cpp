// cuda::router_route against cpu::route_ex for every rule the engines know: DeepSeek-V3 (sigmoid,
// correction bias, 8 groups scored by their two best, 4 kept, renormalised, scaled), DeepSeek-V2
// (softmax, groups scored by their best, excluded experts at 0), GLM-4.5 (sigmoid, bias, one
// group), gpt-oss (top-k of the logits, then softmax over the k) and the plain router. Ids
// exactly equal, weights within 1e-6 (the sums run in another order).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "gpu/gpu_test.h"
#include "kernels/cpu/routing.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/ops.h"

using namespace moe;
using namespace moe::test;
using cuda::DeviceBuffer;

namespace {

struct Rule {
  std::string name;
  int E, k;
  cpu::RouterSpec spec;  // bias: set per test to random values
  bool with_bias;
};

std::vector<Rule> rules() {
  std::vector<Rule> v;
  cpu::RouterSpec s;
  s = {};
  s.sigmoid = true, s.n_groups = 8, s.topk_groups = 4, s.group_top2_sum = true, s.renorm = true, s.scale = 2.5f;
  v.push_back({"deepseek_v3", 256, 8, s, true});
  s = {};
  s.n_groups = 8, s.topk_groups = 3;
  v.push_back({"deepseek_v2", 160, 6, s, false});
  s = {};
  s.sigmoid = true, s.renorm = true, s.scale = 1.8f;
  v.push_back({"glm45", 128, 8, s, true});
  s = {};
  s.softmax_after_topk = true;
  v.push_back({"gpt_oss", 32, 4, s, false});
  s = {};
  s.renorm = true;
  v.push_back({"plain", 60, 4, s, false});
  s = {};
  s.sigmoid = true, s.n_groups = 4, s.topk_groups = 2, s.renorm = false;
  v.push_back({"sigmoid_groups_by_best", 64, 8, s, true});
  return v;
}

cuda::RouterRule device_rule(const cpu::RouterSpec& s, const float* bias) {
  return {.sigmoid = s.sigmoid,
          .softmax_after_topk = s.softmax_after_topk,
          .bias = bias,
          .n_groups = s.n_groups,
          .topk_groups = s.topk_groups,
          .group_top2_sum = s.group_top2_sum,
          .renorm = s.renorm,
          .scale = s.scale};
}

}  // namespace

TEST(RouterCuda, EveryRuleMatchesRouteEx) {
  SKIP_WITHOUT_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("MOE_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (const Rule& r : rules())
    for (int64_t T : {1, 5, 33}) {
      SCOPED_TRACE(r.name + " T=" + std::to_string(T));
      const std::vector<float> logits = random_vec(rng, T * r.E, 2.0f);
      std::vector<float> bias = r.with_bias ? random_vec(rng, r.E, 0.5f) : std::vector<float>{};
      cpu::RouterSpec spec = r.spec;
      spec.n_experts = r.E, spec.top_k = r.k, spec.bias = bias.empty() ? nullptr : bias.data();
      std::vector<int32_t> ids(size_t(T * r.k));
      std::vector<float> wts(size_t(T * r.k)), tmp = logits;
      cpu::route_ex(tmp.data(), T, spec, ids.data(), wts.data());

      DeviceBuffer<float> dl(logits.size()), db(std::max<size_t>(bias.size(), 1)), dw(wts.size());
      DeviceBuffer<int32_t> di(ids.size());
      dl.upload(logits.data(), logits.size());
      if (!bias.empty()) db.upload(bias.data(), bias.size());
      MOE_CUDA_CHECK(cudaMemset(di.get(), 0xff, di.bytes()));
      MOE_CUDA_CHECK(cudaMemset(dw.get(), 0xff, dw.bytes()));
      cuda::router_route(dl.get(), T, r.E, r.k, device_rule(spec, bias.empty() ? nullptr : db.get()), di.get(), dw.get(),
                         nullptr);
      MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
      std::vector<int32_t> gi(ids.size());
      std::vector<float> gw(wts.size());
      di.download(gi.data(), gi.size());
      dw.download(gw.data(), gw.size());
      for (size_t i = 0; i < ids.size(); ++i) ASSERT_EQ(gi[i], ids[i]) << "element " << i << " of [T, k]";
      expect_close(gw, wts, 1e-6);
    }
}

// The group limit decides, hand-worked for E = 8 in 4 groups of 2, one group kept, scored by its
// two best: the best single expert (6) sits in a group whose sum loses to group 1.
TEST(RouterCuda, GroupLimitExcludesTheBestExpertsGroup) {
  SKIP_WITHOUT_GPU();
  // sigmoid(x) increases with x: group sums (experts 2i, 2i+1): g0 = s(0)+s(0), g1 = s(3)+s(3),
  // g2 = s(-5)+s(-5), g3 = s(4)+s(-4). g1 wins (2 s(3) > s(4) + s(-4) = 1). Top-2 in g1: 2, 3.
  const std::vector<float> logits = {0, 0, 3, 3, -5, -5, 4, -4};
  cpu::RouterSpec s;
  s.n_experts = 8, s.top_k = 2, s.sigmoid = true, s.n_groups = 4, s.topk_groups = 1, s.group_top2_sum = true,
  s.renorm = true;
  DeviceBuffer<float> dl(8), dw(2);
  DeviceBuffer<int32_t> di(2);
  dl.upload(logits.data(), 8);
  cuda::router_route(dl.get(), 1, 8, 2, device_rule(s, nullptr), di.get(), dw.get(), nullptr);
  MOE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  int32_t ids[2];
  float w[2];
  di.download(ids, 2);
  dw.download(w, 2);
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[1], 3);
  EXPECT_FLOAT_EQ(w[0], 0.5f);
  std::vector<float> tmp = logits;
  int32_t ci[2];
  float cw[2];
  cpu::route_ex(tmp.data(), 1, s, ci, cw);
  EXPECT_EQ(ci[0], 2);
  EXPECT_EQ(ci[1], 3);
}

TEST(RouterCudaArgs, RefusesGroupsItCannotHold) {
  float* p = nullptr;
  int32_t* ids = nullptr;
  cuda::RouterRule r;
  r.n_groups = 64, r.topk_groups = 4;  // more groups than lanes
  EXPECT_THROW(cuda::router_route(p, 1, 256, 8, r, ids, p, nullptr), std::invalid_argument);
  r.n_groups = 6;  // does not divide 256
  EXPECT_THROW(cuda::router_route(p, 1, 256, 8, r, ids, p, nullptr), std::invalid_argument);
  r.n_groups = 8, r.topk_groups = 1;  // one group of 32 holds fewer than k = 40
  EXPECT_THROW(cuda::router_route(p, 1, 256, 40, r, ids, p, nullptr), std::invalid_argument);
  EXPECT_FALSE(cuda::router_unsupported(256, 40, r).empty());  // what the engine asks before routing on the device
  for (const Rule& ok : rules()) EXPECT_EQ(cuda::router_unsupported(ok.E, ok.k, device_rule(ok.spec, nullptr)), "") << ok.name;
}
