// Weights of a loaded model, as views into memory-mapped checkpoint files, plus the
// source of routed experts. The engine reads from this; it never owns file handles.
#pragma once
#include <filesystem>
#include <memory>
#include <vector>

#include "quant/weight_view.h"
#include "runtime/model_config.h"
#include "storage/expert_source.h"

namespace moe {

class Checkpoint;

struct AttentionWeights {
  WeightView q, k, v, o;                    // [n_heads*hd, H], [n_kv*hd, H] x2, [H, n_heads*hd]
  WeightView q_bias, k_bias, v_bias, o_bias;  // empty when the model has none
  WeightView q_norm, k_norm;                // [hd] (per head) or [n*hd] (full projection)
  // MLA (q/k/v above unused, except q = q_proj when there is no q bottleneck):
  WeightView q_a, q_a_norm, q_b;  // [q_lora, H], [q_lora], [n_heads * qk_head_dim, q_lora]
  WeightView kv_a, kv_a_norm;     // [kv_lora + qk_rope, H], [kv_lora]
  WeightView kv_b;                // [n_heads * (qk_nope + v_head), kv_lora]
  WeightView sinks;               // [n_heads] gpt-oss attention sinks (empty when none)
};

// A gated DeltaNet layer, in one layout whatever the checkpoint's: qkv rows q (all key heads),
// k, then v (all value heads); conv channels in that order.
struct LinearAttnWeights {
  WeightView qkv;       // [2 * nk * dk + nv * dv, H]
  WeightView z;         // [nv * dv, H] the output gate
  WeightView b, a;      // [nv, H] beta and decay inputs
  WeightView conv;      // [conv_dim, conv_kernel] depthwise causal conv
  WeightView dt_bias, a_log;  // [nv]
  WeightView norm;      // [dv] gated RMSNorm (weight used as is)
  WeightView out;       // [H, nv * dv]
};

struct FfnWeights {
  WeightView gate, up, down;  // [I, H], [I, H], [H, I]
};

struct LayerWeights {
  WeightView attn_norm, ffn_norm;  // [H]
  AttentionWeights attn;
  LinearAttnWeights linear;  // gated DeltaNet layers (attn unused there)
  FfnKind kind = FfnKind::Dense;
  FfnWeights dense;         // kind == Dense
  WeightView router;        // [n_experts, H]
  WeightView router_bias;   // [n_experts] correction bias for the choice (sigmoid routers), else empty
  WeightView router_logit_bias;  // [n_experts] added to the router logits (gpt-oss), else empty
  // gpt-oss expert biases, flat: [n_experts * I] gate and up, [n_experts * H] down (else empty).
  WeightView expert_gate_bias, expert_up_bias, expert_down_bias;
  FfnWeights shared;        // shared expert (empty when none)
  WeightView shared_gate;   // [1, H] (empty when none)
};

// A multi-token-prediction block (DeepSeek-V3, GLM-4.5): the next token's embedding and the
// last hidden state, normed, concatenated and projected, then one decoder layer. Kept for
// speculative decoding; the engine does not run it yet.
struct MtpLayer {
  WeightView eh_proj;             // [H, 2H]
  WeightView enorm, hnorm;        // [H]
  WeightView head_norm;           // [H] shared_head.norm
  LayerWeights layer;
  std::vector<ExpertWeights> experts;
};

struct Model {
  ModelConfig cfg;
  WeightView embed;       // [vocab, H]
  WeightView final_norm;  // [H]
  WeightView lm_head;     // [vocab, H] (== embed when tied)
  std::vector<LayerWeights> layers;
  std::unique_ptr<ExpertSource> experts;
  std::shared_ptr<const Checkpoint> checkpoint;  // HF directory: keeps the mappings alive (null for packs)
  std::shared_ptr<const void> storage;           // pack file, readers, caches the views point into
  bool fused_experts = false;                    // checkpoint used the 3-D fused expert layout
  std::vector<MtpLayer> mtp;                     // HF checkpoints that ship them (packs drop them)
};

// Loads config.json and validates every tensor of an HF model directory.
Model load_hf_model(const std::filesystem::path& dir);

struct ParamCounts {
  int64_t total = 0;       // every parameter, tied embeddings once (as HF num_parameters())
  int64_t active = 0;      // used per token: total minus the unselected routed experts
  int64_t per_expert = 0;  // one routed expert
};
ParamCounts count_params(const ModelConfig& c);

// [n_layers] routed experts per layer, 0 for dense ones.
std::vector<int> experts_per_layer(const Model& m);
// The first layer with routed experts; -1 when every layer is dense.
int first_moe_layer(const Model& m);

}  // namespace moe
