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

struct RouterConfig {
  int n_experts = 0;
  int top_k = 0;
  bool norm_topk_prob = false;  // renormalise the top-k softmax weights to sum to 1
  // Reserved for DeepSeek-style routing (sigmoid scores, grouped top-k, bias correction).
  double routed_scaling = 1.0;
};

struct ModelConfig {
  std::string architecture;  // e.g. "Qwen3MoeForCausalLM"
  std::string model_type;    // e.g. "qwen3_moe"
  int64_t vocab_size = 0;
  int64_t hidden = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  double rms_eps = 1e-6;
  int64_t max_position = 0;
  RopeConfig rope;
  int64_t sliding_window = 0;  // 0: full causal attention
  bool qkv_bias = false;
  bool o_bias = false;
  QkNorm qk_norm = QkNorm::None;
  double clip_qkv = 0.0;  // 0: no clamp (OLMoE option)
  bool tie_embeddings = false;

  std::vector<FfnKind> ffn;         // per layer
  int64_t dense_intermediate = 0;   // FFN width of dense layers
  int64_t moe_intermediate = 0;     // width of one routed expert
  RouterConfig router;
  int64_t shared_intermediate = 0;  // 0: no shared expert
  bool shared_expert_gate = false;  // Qwen2-MoE: sigmoid(h . w) scales the shared expert

  std::vector<int32_t> eos_ids;     // from config.json / generation_config.json
  int32_t bos_id = -1;

  int n_moe_layers() const;
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
