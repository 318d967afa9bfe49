#include "runtime/router_spec.h"

#include "kernels/cpu/ops.h"

namespace moe {

cpu::RouterSpec router_spec(const ModelConfig& c, const LayerWeights& L, std::vector<float>& bias) {
  const int E = c.router.n_experts;
  bias.clear();
  if (!L.router_bias.empty()) {
    bias.resize(size_t(E));
    cpu::to_f32(L.router_bias, 0, E, bias.data());
  }
  const RouterConfig& rc = c.router;
  return cpu::RouterSpec{.n_experts = E,
                         .top_k = rc.top_k,
                         .sigmoid = rc.scoring == RouterScoring::Sigmoid,
                         .softmax_after_topk = rc.scoring == RouterScoring::TopKSoftmax,
                         .bias = bias.empty() ? nullptr : bias.data(),
                         .n_groups = rc.n_groups,
                         .topk_groups = rc.topk_groups,
                         .group_top2_sum = rc.group_score == GroupScore::TopTwoSum,
                         .renorm = rc.norm_topk_prob,
                         .scale = float(rc.routed_scaling)};
}


}  // namespace moe
