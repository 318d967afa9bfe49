#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <nlohmann/json.hpp>

#include "runtime/model_config.h"

using namespace moe;
using nlohmann::json;

namespace {

json qwen3() {
  return json::parse(R"({
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
    "vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 32, "rms_norm_eps": 1e-6, "max_position_embeddings": 512,
    "intermediate_size": 128, "moe_intermediate_size": 32, "num_experts": 8, "num_experts_per_tok": 2,
    "norm_topk_prob": true, "decoder_sparse_step": 1, "mlp_only_layers": [1],
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}, "eos_token_id": 5})");
}

std::string error_of(const json& j) {
  try {
    parse_model_config(j, "config.json");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Config, Qwen3MoeFields) {
  const ModelConfig c = parse_model_config(qwen3(), "config.json");
  EXPECT_EQ(c.gpu_unsupported(), "");  // the GPU engine runs the original four families
  EXPECT_EQ(c.rotary_dim, c.head_dim);
  EXPECT_EQ(c.kv_floats_per_layer(), 2 * 2 * 32);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.qk_norm, QkNorm::PerHead);
  EXPECT_TRUE(c.router.norm_topk_prob);
  EXPECT_EQ(c.ffn, (std::vector<FfnKind>{FfnKind::Moe, FfnKind::Dense, FfnKind::Moe, FfnKind::Moe}));
  EXPECT_EQ(c.n_moe_layers(), 3);
  EXPECT_EQ(c.eos_ids, std::vector<int32_t>{5});
}

TEST(Config, DecoderSparseStep) {
  json j = qwen3();
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = json::array();
  const ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.ffn, (std::vector<FfnKind>{FfnKind::Dense, FfnKind::Moe, FfnKind::Dense, FfnKind::Moe}));
}

TEST(Config, FamilyDefaults) {
  json m = qwen3();
  m["architectures"] = {"MixtralForCausalLM"};
  m["num_local_experts"] = 8;
  m.erase("head_dim");
  const ModelConfig mx = parse_model_config(m, "config.json");
  EXPECT_TRUE(mx.router.norm_topk_prob);  // Mixtral always renormalises
  EXPECT_EQ(mx.head_dim, 16);              // hidden / heads when head_dim is absent
  EXPECT_EQ(mx.moe_intermediate, 128);     // Mixtral's intermediate_size is the expert width
  EXPECT_EQ(mx.n_moe_layers(), 4);
  json o = qwen3();
  o["architectures"] = {"OlmoeForCausalLM"};
  o["clip_qkv"] = 8.0;
  o["norm_topk_prob"] = false;
  const ModelConfig ol = parse_model_config(o, "config.json");
  EXPECT_EQ(ol.qk_norm, QkNorm::Full);
  EXPECT_EQ(ol.clip_qkv, 8.0);
  json q2 = qwen3();
  q2["architectures"] = {"Qwen2MoeForCausalLM"};
  q2["shared_expert_intermediate_size"] = 96;
  const ModelConfig qq = parse_model_config(q2, "config.json");
  EXPECT_TRUE(qq.qkv_bias);
  EXPECT_TRUE(qq.shared_expert_gate);
  EXPECT_EQ(qq.shared_intermediate, 96);
}

TEST(Config, UnknownArchitectureIsNamed) {
  json j = qwen3();
  j["architectures"] = {"LlamaForCausalLM"};
  const std::string e = error_of(j);
  EXPECT_NE(e.find("config.json: architecture 'LlamaForCausalLM' is not supported; supported: MixtralForCausalLM"),
            std::string::npos)
      << e;
}

TEST(Config, BadFieldsAreNamed) {
  json j = qwen3();
  j.erase("hidden_size");
  EXPECT_NE(error_of(j).find("field 'hidden_size' is missing"), std::string::npos);
  j = qwen3();
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(j).find("must divide num_attention_heads"), std::string::npos);
  j = qwen3();
  j["num_experts_per_tok"] = 9;
  EXPECT_NE(error_of(j).find("exceeds the number of experts"), std::string::npos);
  j = qwen3();
  j["rope_parameters"] = {{"rope_type", "longrope"}, {"rope_theta", 1e4}};
  EXPECT_NE(error_of(j).find("'longrope' is not supported"), std::string::npos);
}

TEST(Config, LegacyRopeFieldsAndInvFreq) {
  json j = qwen3();
  j.erase("rope_parameters");
  j["rope_theta"] = 1e6;
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  const ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.rope.type, RopeType::Linear);
  EXPECT_EQ(c.rope.theta, 1e6);
  const auto inv = rope_inv_freq(c.rope, 32);
  ASSERT_EQ(inv.size(), 16u);
  EXPECT_FLOAT_EQ(inv[0], 0.5f);
  EXPECT_NEAR(inv[8], std::pow(1e6, -0.5) / 2, 1e-9);
}

TEST(Config, YarnAttentionFactorAndRamp) {
  json j = qwen3();
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64},
                          {"rope_theta", 10000.0}};
  const ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_NEAR(c.rope.attention_factor, 0.1 * std::log(4.0) + 1.0, 1e-12);
  const auto inv = rope_inv_freq(c.rope, 32), base = rope_inv_freq(RopeConfig{}, 32);
  EXPECT_FLOAT_EQ(inv[0], base[0]);                 // high frequencies are kept (extrapolated)
  EXPECT_NEAR(inv[15], base[15] / 4.0f, 1e-12);     // low frequencies are interpolated
}

// Integers that do not fit their field were truncated mod 2^32: 2^32 heads became 0 and the
// default head_dim divided by it (SIGFPE); 2^32 top-k became 0. Every integer is range-checked.
TEST(Config, OversizedIntegersAreRejectedNotTruncated) {
  const std::vector<std::pair<std::string, json>> cases = {
      {"num_attention_heads", json(4294967296LL)}, {"num_experts_per_tok", json(4294967296LL)},
      {"num_experts", json(4294967304LL)},         {"num_hidden_layers", json(18446744073709551615ULL)},
      {"vocab_size", json(-5)},                    {"num_key_value_heads", json(0)},
      {"max_position_embeddings", json(0)},        {"decoder_sparse_step", json(-1)},
      {"bos_token_id", json(4294967296LL)},        {"eos_token_id", json::array({5, -1})},
      {"mlp_only_layers", json::array({4294967297LL})}};
  for (const auto& [field, value] : cases) {
    json j = qwen3();
    j[field] = value;
    if (field == "num_attention_heads") j["head_dim"] = nullptr;
    const std::string e = error_of(j);
    EXPECT_NE(e.find("config.json: field '" + field + "' must be an integer in ["), std::string::npos)
        << field << " = " << value << ": " << e;
  }
}

// Values that parsed but made NaN or silently wrong logits: each float is range-checked.
TEST(Config, NonsensicalNumbersAreRejected) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<std::tuple<std::string, json, std::string>> cases = {
      {"rope_theta", 0.0, "rope_parameters.rope_theta"},
      {"rope_theta", inf, "rope_parameters.rope_theta"},
      {"rms_norm_eps", -1e-6, "rms_norm_eps"},
      {"rms_norm_eps", inf, "rms_norm_eps"},
      {"linear factor", 0.0, "rope_parameters.factor"},
      {"linear factor", -2.0, "rope_parameters.factor"},
      {"beta_fast", 0.0, "rope_parameters.beta_fast"},
      {"beta_slow", 0.0, "rope_parameters.beta_slow"},
      {"shared_expert_intermediate_size", -1, "shared_expert_intermediate_size"},
      {"clip_qkv", -1.0, "clip_qkv"}};
  for (const auto& [what, value, field] : cases) {
    json j = qwen3();
    auto& rope = j["rope_parameters"];
    if (what == "rope_theta") rope["rope_theta"] = value;
    else if (what == "linear factor") rope = {{"rope_type", "linear"}, {"factor", value}, {"rope_theta", 1e4}};
    else if (what.starts_with("beta")) rope = {{"rope_type", "yarn"}, {"factor", 4.0}, {what, value}, {"rope_theta", 1e4}};
    else j[what] = value;
    if (what == "shared_expert_intermediate_size") j["architectures"] = {"Qwen2MoeForCausalLM"};
    if (what == "clip_qkv") j["architectures"] = {"OlmoeForCausalLM"};
    const std::string e = error_of(j);
    EXPECT_NE(e.find("config.json: field '" + field + "' must be "), std::string::npos) << what << " = " << value << ": " << e;
  }
  json j = qwen3();  // each constant in range, the frequencies not: 1/1e-300 overflows a float
  j["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 1e-300}, {"rope_theta", 1e4}};
  EXPECT_NE(error_of(j).find("field 'rope_parameters' gives a non-finite RoPE frequency"), std::string::npos)
      << error_of(j);
}

// A field of the wrong JSON type is named with its file (nlohmann's own message names neither).
TEST(Config, TypeErrorsNameFileAndField) {
  const std::vector<std::pair<std::string, json>> cases = {{"hidden_size", "abc"},  {"model_type", 5},
                                                           {"mlp_only_layers", "1"}, {"eos_token_id", "x"},
                                                           {"rope_parameters", 3},   {"architectures", {7}}};
  for (const auto& [field, value] : cases) {
    json j = qwen3();
    j[field] = value;
    const std::string e = error_of(j);
    EXPECT_NE(e.find("config.json: field '" + field + "'"), std::string::npos) << field << ": " << e;
  }
  json j = qwen3();
  j["rope_parameters"]["rope_type"] = 5;
  EXPECT_NE(error_of(j).find("config.json: field 'rope_parameters.rope_type' must be a string"), std::string::npos)
      << error_of(j);
}

// generation_config.json (a directory's, or a pack's embedded copy: one function serves both)
// replaces the stop and start ids, with the same range checks as config.json; a pack's copy used
// to keep only the low 32 bits of 4294967301.
TEST(Config, GenerationConfigIdsAreRangeChecked) {
  ModelConfig c = parse_model_config(qwen3(), "config.json");
  apply_generation_config_text(c, R"({"eos_token_id": [7, 9], "bos_token_id": 1})", "generation_config.json");
  EXPECT_EQ(c.eos_ids, (std::vector<int32_t>{7, 9}));
  EXPECT_EQ(c.bos_id, 1);
  for (const char* bad : {R"({"eos_token_id": 4294967301})", R"({"eos_token_id": [3, -1]})",
                          R"({"bos_token_id": "one"})", R"([1, 2])", "{not json"}) {
    try {
      apply_generation_config_text(c, bad, "pack (embedded generation_config.json)");
      ADD_FAILURE() << bad << ": accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("pack (embedded generation_config.json)"), std::string::npos) << e.what();
    }
  }
}

namespace {

// DeepSeek-V3's hub config.json, cut to 6 layers (field names and values as shipped).
json deepseek_v3() {
  return json::parse(R"({
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "vocab_size": 129280,
    "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048, "num_hidden_layers": 6,
    "num_attention_heads": 128, "num_key_value_heads": 128, "n_shared_experts": 1, "n_routed_experts": 256,
    "routed_scaling_factor": 2.5, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64,
    "v_head_dim": 128, "qk_nope_head_dim": 128, "topk_method": "noaux_tc", "n_group": 8, "topk_group": 4,
    "num_experts_per_tok": 8, "moe_layer_freq": 1, "first_k_dense_replace": 3, "norm_topk_prob": true,
    "scoring_func": "sigmoid", "max_position_embeddings": 163840, "rms_norm_eps": 1e-06, "rope_theta": 10000,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
    "num_nextn_predict_layers": 1, "attention_bias": false, "bos_token_id": 0, "eos_token_id": 1})");
}

}  // namespace

TEST(Config, DeepseekV3Fields) {
  const ModelConfig c = parse_model_config(deepseek_v3(), "config.json");
  EXPECT_TRUE(c.is_mla());
  EXPECT_EQ(c.head_dim, 192);
  EXPECT_EQ(c.rotary_dim, 64);
  EXPECT_TRUE(c.rope_interleaved);
  EXPECT_EQ(c.kv_floats_per_layer(), 576);  // latent 512 + rotary key 64
  EXPECT_EQ(c.router.scoring, RouterScoring::Sigmoid);
  EXPECT_TRUE(c.router.correction_bias);
  EXPECT_EQ(c.router.n_groups, 8);
  EXPECT_EQ(c.router.topk_groups, 4);
  EXPECT_EQ(c.router.group_score, GroupScore::TopTwoSum);
  EXPECT_DOUBLE_EQ(c.router.routed_scaling, 2.5);
  EXPECT_EQ(c.shared_intermediate, 2048);
  EXPECT_FALSE(c.shared_expert_gate);
  EXPECT_EQ(c.mtp_layers, 1);
  EXPECT_EQ(c.ffn, (std::vector<FfnKind>{FfnKind::Dense, FfnKind::Dense, FfnKind::Dense, FfnKind::Moe, FfnKind::Moe,
                                         FfnKind::Moe}));
  // Softmax scale: 1/sqrt(192) * mscale(40, 1.0)^2.
  const double m = 0.1 * std::log(40.0) + 1.0;
  EXPECT_NEAR(c.attention_scale, m * m / std::sqrt(192.0), 1e-12);
  EXPECT_EQ(c.gpu_unsupported(), "");  // MLA runs on the GPU engine (runtime/gpu/gpu_mla.cpp)
}

TEST(Config, DeepseekV2LiteAndGroupLimitedGreedy) {
  json j = deepseek_v3();
  j["architectures"] = {"DeepseekV2ForCausalLM"};
  j["q_lora_rank"] = nullptr;
  j["topk_method"] = "greedy";
  j.erase("scoring_func");
  ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.mla.q_lora_rank, 0);
  EXPECT_EQ(c.router.scoring, RouterScoring::Softmax);
  EXPECT_EQ(c.router.n_groups, 1);
  EXPECT_FALSE(c.router.norm_topk_prob);  // transformers' V2 router never renormalises
  j["topk_method"] = "group_limited_greedy";
  c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.router.n_groups, 8);
  EXPECT_EQ(c.router.group_score, GroupScore::Max);
  j["topk_method"] = "noaux_tc";
  EXPECT_NE(error_of(j).find("topk_method"), std::string::npos);
}

TEST(Config, Glm4MoePartialRotaryBothSpellings) {
  json j = deepseek_v3();
  j["architectures"] = {"Glm4MoeForCausalLM"};
  for (const char* k : {"q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "v_head_dim", "qk_nope_head_dim"}) j.erase(k);
  j["num_key_value_heads"] = 8;
  j["head_dim"] = 128;
  j["n_group"] = 1;
  j["topk_group"] = 1;
  j["first_k_dense_replace"] = 1;
  j["attention_bias"] = true;
  j["use_qk_norm"] = true;
  j["partial_rotary_factor"] = 0.5;
  ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_FALSE(c.is_mla());
  EXPECT_EQ(c.rotary_dim, 64);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_EQ(c.qk_norm, QkNorm::PerHead);
  EXPECT_EQ(c.kv_floats_per_layer(), 2 * 8 * 128);
  // The GPU engine runs it: host routing (sigmoid, correction bias, scaling), partial RoPE, an
  // ungated shared expert.
  EXPECT_EQ(c.gpu_unsupported(), "");
  // transformers 5 moves the factor into rope_parameters.
  j.erase("partial_rotary_factor");
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e6}, {"partial_rotary_factor", 0.25}};
  c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.rotary_dim, 32);
}

TEST(Config, DeepseekErrorsNameTheField) {
  json j = deepseek_v3();
  j["n_group"] = 7;  // does not divide 256
  EXPECT_NE(error_of(j).find("'n_group' (7) must divide"), std::string::npos) << error_of(j);
  j = deepseek_v3();
  j["num_experts_per_tok"] = 200;  // more than 4 groups x 32 experts
  EXPECT_NE(error_of(j).find("num_experts_per_tok"), std::string::npos) << error_of(j);
  j = deepseek_v3();
  j["attention_bias"] = true;
  EXPECT_NE(error_of(j).find("attention_bias"), std::string::npos) << error_of(j);
  j = deepseek_v3();
  j["scoring_func"] = "softmax";
  EXPECT_NE(error_of(j).find("scoring_func"), std::string::npos) << error_of(j);
  j = deepseek_v3();
  j["qk_rope_head_dim"] = 63;
  EXPECT_NE(error_of(j).find("qk_rope_head_dim"), std::string::npos) << error_of(j);
  j = deepseek_v3();
  j.erase("kv_lora_rank");
  EXPECT_NE(error_of(j).find("kv_lora_rank' is missing"), std::string::npos) << error_of(j);
}

TEST(Config, GptOssLayerTypesAndDefaults) {
  json j = json::parse(R"({
    "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "vocab_size": 1000, "hidden_size": 64,
    "intermediate_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
    "head_dim": 16, "num_local_experts": 8, "num_experts_per_tok": 2, "sliding_window": 4,
    "max_position_embeddings": 256, "rope_theta": 150000,
    "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "truncate": false}})");
  ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.layer_window, (std::vector<int64_t>{4, 0, 4, 0}));  // transformers' default: even layers slide
  EXPECT_TRUE(c.attention_sinks && c.router_bias && c.expert_biases && c.expert_act.clamped);
  EXPECT_DOUBLE_EQ(c.expert_act.limit, 7.0);
  EXPECT_DOUBLE_EQ(c.expert_act.alpha, 1.702);
  EXPECT_EQ(c.router.scoring, RouterScoring::TopKSoftmax);
  EXPECT_FALSE(c.rope.truncate);
  // The GPU engine runs it (sinks, windows, biases, the clamped SwiGLU; MXFP4 experts are a
  // pack's, refused by the engine itself).
  EXPECT_EQ(c.gpu_unsupported(), "");
  j["layer_types"] = {"full_attention", "full_attention", "sliding_attention", "full_attention"};
  c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.layer_window, (std::vector<int64_t>{0, 0, 4, 0}));
  j["layer_types"] = {"full_attention"};
  EXPECT_NE(error_of(j).find("'layer_types' must list one type per layer (4)"), std::string::npos) << error_of(j);
  j["layer_types"] = {"full_attention", "chunked_attention", "full_attention", "full_attention"};
  EXPECT_NE(error_of(j).find("entry 1"), std::string::npos) << error_of(j);
}

TEST(Config, Qwen3NextLayerTypesAndState) {
  json j = qwen3();
  j["architectures"] = {"Qwen3NextForCausalLM"};
  j["num_hidden_layers"] = 8;
  j["mlp_only_layers"] = json::array();
  j["shared_expert_intermediate_size"] = 64;
  j["linear_num_key_heads"] = 2;
  j["linear_num_value_heads"] = 4;
  j["linear_key_head_dim"] = 16;
  j["linear_value_head_dim"] = 32;
  j["linear_conv_kernel_dim"] = 4;
  j["partial_rotary_factor"] = 0.25;
  ModelConfig c = parse_model_config(j, "config.json");
  // transformers' default: every 4th layer full attention.
  EXPECT_EQ(c.linear_layers, (std::vector<bool>{true, true, true, false, true, true, true, false}));
  EXPECT_EQ(c.n_linear_layers(), 6);
  EXPECT_EQ(c.rotary_dim, 8);
  EXPECT_TRUE(c.norm_plus_one && c.attn_output_gate && c.shared_expert_gate);
  // conv window (K-1) x (2*2*16 + 4*32) + delta state 4 x 16 x 32, fp32, 6 layers.
  EXPECT_EQ(c.state_bytes_per_sequence(), 6 * (3 * (64 + 128) + 4 * 16 * 32) * 4);
  EXPECT_EQ(c.kv_bytes_per_token(), 2 * 2 * 2 * 32 * 4);  // 2 attention layers, K and V, 2 kv heads x 32
  EXPECT_EQ(c.gpu_unsupported(), "");  // gated DeltaNet runs on the GPU engine (runtime/gpu/gpu_linear.cpp)
  j["full_attention_interval"] = 2;
  EXPECT_EQ(parse_model_config(j, "config.json").n_linear_layers(), 4);
  j["linear_num_value_heads"] = 3;  // not a multiple of the key heads
  EXPECT_NE(error_of(j).find("linear_num_value_heads"), std::string::npos) << error_of(j);
  j["linear_num_value_heads"] = 4;
  j["layer_types"] = {"linear_attention", "sliding_attention"};
  EXPECT_NE(error_of(j).find("'layer_types' must list one type per layer (8)"), std::string::npos) << error_of(j);
}
