// The model description: everything the engine needs to know about an architecture,
// read from a Hugging Face config.json. Fields are generic (attention kind, router kind,
// per-layer FFN kind) so new families (DeepSeek MLA + grouped routing, gpt-oss) add
// values here rather than new engines.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moe {

enum class RopeType { Default, Linear, Yarn, Llama3 };

struct RopeConfig {
  RopeType type = RopeType::Default;
  double theta = 10000.0;
  double factor = 1.0;
  int64_t original_max_position = 0;          // yarn, llama3
  double beta_fast = 32.0, beta_slow = 1.0;   // yarn
  double attention_factor = 1.0;              // yarn: scales cos/sin
  bool truncate = true;                       // yarn
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
};

// Where query/key RMSNorm applies: none, per head over head_dim (Qwen3), or over the
// whole projection before splitting into heads (OLMoE).
enum class QkNorm { None, PerHead, Full };

enum class FfnKind { Dense, Moe };

// The routed experts' activation: SwiGLU silu(gate) * up, or gpt-oss's clamped variant
// gate' = min(gate, limit), up' = clamp(up, -limit, limit), (up' + 1) * gate' * sigmoid(alpha * gate').
struct ExpertActivation {
  bool clamped = false;
  double limit = 0.0, alpha = 1.0;
};

// How a router turns its logits into scores: softmax over all experts (Mixtral, Qwen,
// OLMoE, DeepSeek-V2) or an independent sigmoid per expert (DeepSeek-V3, GLM-4.5).
// gpt-oss: top-k of the logits first, then a softmax over those k.
enum class RouterScoring { Softmax, Sigmoid, TopKSoftmax };

// Which experts may be chosen: the plain top-k, or the top-k within the best `topk_group`
// of `n_groups` equal groups of experts. A group's score is its best expert's score
// (DeepSeek-V2 group_limited_greedy) or the sum of its two best (DeepSeek-V3 noaux_tc,
// scores plus the correction bias).
enum class GroupScore { Max, TopTwoSum };

struct RouterConfig {
  int n_experts = 0;
  int top_k = 0;
  bool norm_topk_prob = false;  // renormalise the top-k weights to sum to 1
  RouterScoring scoring = RouterScoring::Softmax;
  // Sigmoid routers: a per-expert bias (e_score_correction_bias) added to the scores for the
  // choice only; the weights stay the unbiased scores.
  bool correction_bias = false;
  int n_groups = 1;   // 1: no group limit
  int topk_groups = 1;
  GroupScore group_score = GroupScore::Max;
  double routed_scaling = 1.0;  // multiplies the final weights (after renormalisation)
};

// Multi-head latent attention (DeepSeek-V2/V3): queries optionally through a low-rank
// bottleneck, keys and values from one compressed latent shared by all heads plus a small
// shared rotary key. The KV cache holds the latent and the rotary key only.
struct MlaConfig {
  int q_lora_rank = 0;   // 0: q_proj straight from the hidden state (V2-Lite)
  int kv_lora_rank = 0;  // 0: not MLA
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;
  int qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
};

// Gated DeltaNet linear attention (Qwen3-Next, Qwen3.5-MoE): per layer a causal depthwise conv
// over the last `conv_kernel` q/k/v inputs and a [k_dim, v_dim] state per value head, instead of
// a KV cache that grows with the sequence.
struct LinearAttnConfig {
  int n_k_heads = 0, n_v_heads = 0;
  int k_dim = 0, v_dim = 0;
  int conv_kernel = 0;
  int64_t conv_dim() const { return 2 * int64_t(n_k_heads) * k_dim + int64_t(n_v_heads) * v_dim; }
  // fp32 values of one sequence's state in one layer: the conv window, then the delta-rule state.
  int64_t state_floats() const { return conv_dim() * (conv_kernel - 1) + int64_t(n_v_heads) * k_dim * v_dim; }
};

struct ModelConfig {
  std::string architecture;  // e.g. "Qwen3MoeForCausalLM"
  std::string model_type;    // e.g. "qwen3_moe"
  int64_t vocab_size = 0;
  int64_t hidden = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;       // MLA: the query/key head width (qk_nope + qk_rope)
  int rotary_dim = 0;     // leading dims of each head RoPE rotates (partial rotary; MLA: qk_rope)
  bool rope_interleaved = false;  // RoPE rotates adjacent pairs (DeepSeek) instead of halves
  MlaConfig mla;          // kv_lora_rank > 0: multi-head latent attention
  std::vector<bool> linear_layers;  // per layer: gated DeltaNet instead of attention (empty: none)
  LinearAttnConfig linear;
  bool attn_output_gate = false;    // q_proj also yields a per-head gate: out * sigmoid(gate) (Qwen3-Next)
  bool norm_plus_one = false;       // RMSNorm scales by (1 + w), weights stored centred on 0 (Qwen3-Next)
  double attention_scale = 0;  // softmax scale of q.k; 1/sqrt(head_dim) unless the family says
  double rms_eps = 1e-6;
  int64_t max_position = 0;
  RopeConfig rope;
  int64_t sliding_window = 0;  // 0: full causal attention
  std::vector<int64_t> layer_window;  // per layer: sliding_window, or 0 where a layer attends fully (gpt-oss)
  bool attention_sinks = false;       // gpt-oss: one learned logit per head joins each softmax
  bool qkv_bias = false;
  bool o_bias = false;
  QkNorm qk_norm = QkNorm::None;
  double clip_qkv = 0.0;  // 0: no clamp (OLMoE option)
  bool tie_embeddings = false;

  std::vector<FfnKind> ffn;         // per layer
  int64_t dense_intermediate = 0;   // FFN width of dense layers
  int64_t moe_intermediate = 0;     // width of one routed expert
  RouterConfig router;
  bool router_bias = false;          // a bias added to the router logits (gpt-oss)
  bool expert_biases = false;        // routed experts' gate/up/down carry biases (gpt-oss)
  ExpertActivation expert_act;
  int64_t shared_intermediate = 0;  // 0: no shared expert
  bool shared_expert_gate = false;  // Qwen2-MoE: sigmoid(h . w) scales the shared expert
  int mtp_layers = 0;               // DeepSeek-V3 / GLM-4.5 multi-token-prediction layers after the last

  std::vector<int32_t> eos_ids;     // from config.json / generation_config.json
  int32_t bos_id = -1;

  int n_moe_layers() const;
  int64_t window(int layer) const { return layer_window.empty() ? sliding_window : layer_window[size_t(layer)]; }
  bool is_mla() const { return mla.kv_lora_rank > 0; }
  bool is_linear(int layer) const { return !linear_layers.empty() && linear_layers[size_t(layer)]; }
  int n_linear_layers() const;
  // KV bytes one token adds (fp32, attention layers only) and the fixed recurrent state of one
  // sequence (linear layers), as the engines keep them.
  int64_t kv_bytes_per_token() const;
  int64_t state_bytes_per_sequence() const;
  // fp32 values the KV cache holds per token and layer: K and V rows, or MLA's latent + rotary key.
  int64_t kv_floats_per_layer() const;
  // What the GPU engine cannot run yet (empty when it can); the CPU engine runs everything parsed.
  std::string gpu_unsupported() const;
};

// Parses config.json (and generation_config.json next to it when present). Throws
// std::runtime_error with a one-line message naming the file and the field: a missing or
// mistyped field, or a value out of its range (a count that does not fit, a non-positive
// size, a non-finite or nonsensical RoPE/norm constant) never reaches the engine.
ModelConfig load_model_config(const std::filesystem::path& model_dir);
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& file_for_errors);
// The same from config.json's text (a pack's embedded copy, the fuzz target).
ModelConfig parse_model_config_text(std::string_view json_text, const std::string& file_for_errors);
// generation_config.json's text (a directory's file or a pack's embedded copy): its stop and
// start token ids, when present, replace the config's; range-checked like config.json's.
void apply_generation_config_text(ModelConfig& c, std::string_view json_text, const std::string& file_for_errors);

// Inverse frequencies [head_dim / 2] and the cos/sin scale for a RoPE configuration.
std::vector<float> rope_inv_freq(const RopeConfig& r, int head_dim);

std::vector<std::string> supported_architectures();

}  // namespace moe
