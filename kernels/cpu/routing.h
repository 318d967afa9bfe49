// MoE routers beyond softmax + top-k: DeepSeek-V2's group-limited softmax, and the sigmoid
// router of DeepSeek-V3 / GLM-4.5 with its correction bias and group limit. Semantics follow
// transformers' DeepseekV2TopkRouter / DeepseekV3TopkRouter (the bias steers the choice only).
#pragma once
#include <cstdint>

namespace moe::cpu {

struct RouterSpec {
  int n_experts = 0;
  int top_k = 0;
  bool sigmoid = false;           // scores = sigmoid(logits), else softmax over all experts
  bool softmax_after_topk = false;  // gpt-oss: top-k of the logits, then softmax over those k
  const float* bias = nullptr;    // [n_experts] added to the scores for the choice only
  int n_groups = 1;               // > 1: choose among the best `topk_groups` groups only
  int topk_groups = 1;
  bool group_top2_sum = false;    // a group's score: sum of its two best (V3) or its best (V2)
  bool renorm = false;            // chosen weights divided by their sum (+1e-20 for sigmoid)
  float scale = 1.0f;             // routed_scaling_factor, applied last
};

// logits: [T, E] router outputs (clobbered). ids, weights: [T, top_k].
void route_ex(float* logits, int64_t T, const RouterSpec& s, int32_t* ids, float* weights);

}  // namespace moe::cpu
