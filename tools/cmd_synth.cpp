// moe synth: a random-weight .moepack with a real model's dimensions, written directly (no
// HF checkpoint), for benchmarks of storage tiers and prefetching at full scale.
//
// Weights (seeded, independent of the thread count):
//   matrices        N(0, 1/cols): unit-RMS inputs give unit-variance outputs, so activations
//                   stay bounded through every layer
//   embedding       N(0, 1): hidden states of unit RMS
//   router          N(0, (1.5 / sqrt(hidden))^2): over RMSNorm'd hidden states (unit RMS) the
//                   router logits have std ~1.5, so the softmax is neither flat nor one-hot and
//                   natural routing is diverse (the bench measures its entropy)
//   norms           1; biases 0
//   experts         generated in their stored format (Q4 codes/scales or FP8 codes/scales)
// Tokenizer: the qwen3_moe fixture's byte-level BPE (1500 ids), embedded in the binary; the
// shape's vocabulary may be larger (ids past 1500 decode to nothing). generation_config.json
// names that tokenizer's stop ids; config.json keeps the real model's values.
#include <cstdio>
#include <thread>

#include <fmt/format.h>

#include "quant/quantize.h"
#include "runtime/pack_model.h"
#include "storage/pack_quantize.h"
#include "storage/pack_writer.h"
#include "tools/commands.h"
#include "tools/ordered_pipeline.h"
#include "tools/progress.h"
#include "tools/synth_weights.h"

namespace moe::cli {
namespace {

constexpr float kRouterLogitStd = 1.5f;

using nlohmann::json;

constexpr const char* kShapes =
    "qwen3-30b-a3b, mixtral-8x7b, olmoe-1b-7b, deepseek-v3, kimi-k2, deepseek-v2-lite, glm-4.5, glm-4.5-air, "
    "gpt-oss-120b, gpt-oss-20b, qwen3-next-80b-a3b, qwen3.5-35b-a3b, tiny";

json shape_config(const std::string& shape) {
  if (shape == "qwen3-30b-a3b")
    return {{"architectures", {"Qwen3MoeForCausalLM"}}, {"model_type", "qwen3_moe"}, {"vocab_size", 151936},
            {"hidden_size", 2048}, {"intermediate_size", 6144}, {"moe_intermediate_size", 768},
            {"num_hidden_layers", 48}, {"num_attention_heads", 32}, {"num_key_value_heads", 4}, {"head_dim", 128},
            {"num_experts", 128}, {"num_experts_per_tok", 8}, {"norm_topk_prob", true}, {"decoder_sparse_step", 1},
            {"mlp_only_layers", json::array()}, {"max_position_embeddings", 40960}, {"rope_theta", 1000000.0},
            {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", false}, {"attention_bias", false}, {"hidden_act", "silu"},
            {"bos_token_id", 151643}, {"eos_token_id", 151645}, {"torch_dtype", "bfloat16"}};
  if (shape == "mixtral-8x7b")
    return {{"architectures", {"MixtralForCausalLM"}}, {"model_type", "mixtral"}, {"vocab_size", 32000},
            {"hidden_size", 4096}, {"intermediate_size", 14336}, {"num_hidden_layers", 32},
            {"num_attention_heads", 32}, {"num_key_value_heads", 8}, {"num_local_experts", 8},
            {"num_experts_per_tok", 2}, {"max_position_embeddings", 32768}, {"rope_theta", 1000000.0},
            {"rms_norm_eps", 1e-5}, {"sliding_window", nullptr}, {"tie_word_embeddings", false},
            {"hidden_act", "silu"}, {"bos_token_id", 1}, {"eos_token_id", 2}, {"torch_dtype", "bfloat16"}};
  if (shape == "olmoe-1b-7b")
    return {{"architectures", {"OlmoeForCausalLM"}}, {"model_type", "olmoe"}, {"vocab_size", 50304},
            {"hidden_size", 2048}, {"intermediate_size", 1024}, {"num_hidden_layers", 16},
            {"num_attention_heads", 16}, {"num_key_value_heads", 16}, {"num_experts", 64},
            {"num_experts_per_tok", 8}, {"norm_topk_prob", false}, {"max_position_embeddings", 4096},
            {"rope_theta", 10000.0}, {"rms_norm_eps", 1e-5}, {"clip_qkv", nullptr}, {"tie_word_embeddings", false},
            {"hidden_act", "silu"}, {"bos_token_id", nullptr}, {"eos_token_id", 50279}, {"torch_dtype", "bfloat16"}};
  if (shape == "tiny")  // a Qwen3-MoE small enough for tests: one dense layer, group-128-compatible widths
    return {{"architectures", {"Qwen3MoeForCausalLM"}}, {"model_type", "qwen3_moe"}, {"vocab_size", 1500},
            {"hidden_size", 128}, {"intermediate_size", 256}, {"moe_intermediate_size", 128},
            {"num_hidden_layers", 3}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 32},
            {"num_experts", 8}, {"num_experts_per_tok", 2}, {"norm_topk_prob", true}, {"decoder_sparse_step", 1},
            {"mlp_only_layers", {1}}, {"max_position_embeddings", 512}, {"rope_theta", 1000000.0},
            {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", false}, {"attention_bias", false}, {"hidden_act", "silu"},
            {"bos_token_id", 1495}, {"eos_token_id", 1497}, {"torch_dtype", "bfloat16"}};
  const auto yarn = [](double factor, double mscale) {
    return json{{"type", "yarn"}, {"factor", factor}, {"original_max_position_embeddings", 4096}, {"beta_fast", 32},
                {"beta_slow", 1}, {"mscale", mscale}, {"mscale_all_dim", mscale}};
  };
  // DeepSeek-V3 family: MLA, 256-384 sigmoid-routed experts plus one shared, first layers dense.
  const auto deepseek_v3 = [&](int64_t vocab, int heads, int experts, int groups, int topk_groups, double scaling,
                               int first_dense, double yarn_factor, int64_t max_pos) {
    return json{{"architectures", {"DeepseekV3ForCausalLM"}}, {"model_type", "deepseek_v3"}, {"vocab_size", vocab},
                {"hidden_size", 7168}, {"intermediate_size", 18432}, {"moe_intermediate_size", 2048},
                {"num_hidden_layers", 61}, {"num_attention_heads", heads}, {"num_key_value_heads", heads},
                {"q_lora_rank", 1536}, {"kv_lora_rank", 512}, {"qk_nope_head_dim", 128}, {"qk_rope_head_dim", 64},
                {"v_head_dim", 128}, {"n_routed_experts", experts}, {"n_shared_experts", 1}, {"num_experts_per_tok", 8},
                {"n_group", groups}, {"topk_group", topk_groups}, {"topk_method", "noaux_tc"},
                {"scoring_func", "sigmoid"}, {"norm_topk_prob", true}, {"routed_scaling_factor", scaling},
                {"first_k_dense_replace", first_dense}, {"moe_layer_freq", 1}, {"num_nextn_predict_layers", 1},
                {"rope_theta", 10000.0}, {"rope_scaling", yarn(yarn_factor, 1.0)}, {"max_position_embeddings", max_pos},
                {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", false}, {"attention_bias", false},
                {"hidden_act", "silu"}, {"bos_token_id", 0}, {"eos_token_id", 1}, {"torch_dtype", "bfloat16"}};
  };
  if (shape == "deepseek-v3") return deepseek_v3(129280, 128, 256, 8, 4, 2.5, 3, 40.0, 163840);
  if (shape == "kimi-k2") return deepseek_v3(163840, 64, 384, 1, 1, 2.827, 1, 32.0, 131072);
  if (shape == "deepseek-v2-lite")
    return {{"architectures", {"DeepseekV2ForCausalLM"}}, {"model_type", "deepseek_v2"}, {"vocab_size", 102400},
            {"hidden_size", 2048}, {"intermediate_size", 10944}, {"moe_intermediate_size", 1408},
            {"num_hidden_layers", 27}, {"num_attention_heads", 16}, {"num_key_value_heads", 16},
            {"q_lora_rank", nullptr}, {"kv_lora_rank", 512}, {"qk_nope_head_dim", 128}, {"qk_rope_head_dim", 64},
            {"v_head_dim", 128}, {"n_routed_experts", 64}, {"n_shared_experts", 2}, {"num_experts_per_tok", 6},
            {"topk_method", "greedy"}, {"norm_topk_prob", false}, {"routed_scaling_factor", 1.0},
            {"first_k_dense_replace", 1}, {"moe_layer_freq", 1}, {"rope_theta", 10000.0},
            {"rope_scaling", yarn(40.0, 0.707)}, {"max_position_embeddings", 163840}, {"rms_norm_eps", 1e-6},
            {"tie_word_embeddings", false}, {"attention_bias", false}, {"hidden_act", "silu"},
            {"bos_token_id", 100000}, {"eos_token_id", 100001}, {"torch_dtype", "bfloat16"}};
  // GLM-4.5 family: GQA with partial rotary and qkv bias, sigmoid routing, one shared expert.
  const auto glm = [](int64_t hidden, int64_t inter, int64_t moe_inter, int layers, int experts, int first_dense,
                      double scaling, bool qk_norm) {
    return json{{"architectures", {"Glm4MoeForCausalLM"}}, {"model_type", "glm4_moe"}, {"vocab_size", 151552},
                {"hidden_size", hidden}, {"intermediate_size", inter}, {"moe_intermediate_size", moe_inter},
                {"num_hidden_layers", layers}, {"num_attention_heads", 96}, {"num_key_value_heads", 8},
                {"head_dim", 128}, {"partial_rotary_factor", 0.5}, {"attention_bias", true}, {"use_qk_norm", qk_norm},
                {"n_routed_experts", experts}, {"n_shared_experts", 1}, {"num_experts_per_tok", 8}, {"n_group", 1},
                {"topk_group", 1}, {"norm_topk_prob", true}, {"routed_scaling_factor", scaling},
                {"first_k_dense_replace", first_dense}, {"num_nextn_predict_layers", 1}, {"rope_theta", 1000000.0},
                {"max_position_embeddings", 131072}, {"rms_norm_eps", 1e-5}, {"tie_word_embeddings", false},
                {"hidden_act", "silu"}, {"bos_token_id", nullptr}, {"eos_token_id", {151329, 151336, 151338}},
                {"torch_dtype", "bfloat16"}};
  };
  // gpt-oss: MXFP4 experts with biases, alternating sliding (128) and full attention, sinks.
  const auto gpt_oss = [](int layers, int experts) {
    json types = json::array();
    for (int i = 0; i < layers; ++i) types.push_back(i % 2 == 0 ? "sliding_attention" : "full_attention");
    return json{{"architectures", {"GptOssForCausalLM"}}, {"model_type", "gpt_oss"}, {"vocab_size", 201088},
                {"hidden_size", 2880}, {"intermediate_size", 2880}, {"num_hidden_layers", layers},
                {"num_attention_heads", 64}, {"num_key_value_heads", 8}, {"head_dim", 64},
                {"num_local_experts", experts}, {"num_experts_per_tok", 4}, {"experts_per_token", 4},
                {"sliding_window", 128}, {"layer_types", types}, {"attention_bias", true}, {"swiglu_limit", 7.0},
                {"rope_theta", 150000.0},
                {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 32.0}, {"beta_fast", 32.0}, {"beta_slow", 1.0},
                                  {"truncate", false}, {"original_max_position_embeddings", 4096}}},
                {"max_position_embeddings", 131072}, {"rms_norm_eps", 1e-5}, {"tie_word_embeddings", false},
                {"hidden_act", "silu"}, {"bos_token_id", 199998}, {"eos_token_id", 200002}, {"pad_token_id", 199999},
                {"torch_dtype", "bfloat16"}};
  };
  // Qwen3-Next / Qwen3.5: three gated DeltaNet layers per gated full-attention layer.
  const auto qwen_hybrid = [](const char* arch, const char* type, int64_t vocab, int layers, int experts, int top_k,
                              int64_t max_pos) {
    return json{{"architectures", {arch}}, {"model_type", type}, {"vocab_size", vocab}, {"hidden_size", 2048},
                {"intermediate_size", 5120}, {"moe_intermediate_size", 512}, {"shared_expert_intermediate_size", 512},
                {"num_hidden_layers", layers}, {"num_attention_heads", 16}, {"num_key_value_heads", 2},
                {"head_dim", 256}, {"linear_num_key_heads", 16}, {"linear_num_value_heads", 32},
                {"linear_key_head_dim", 128}, {"linear_value_head_dim", 128}, {"linear_conv_kernel_dim", 4},
                {"full_attention_interval", 4}, {"num_experts", experts}, {"num_experts_per_tok", top_k},
                {"norm_topk_prob", true}, {"decoder_sparse_step", 1}, {"mlp_only_layers", json::array()},
                {"partial_rotary_factor", 0.25}, {"rope_theta", 10000000.0}, {"max_position_embeddings", max_pos},
                {"rms_norm_eps", 1e-6}, {"tie_word_embeddings", false}, {"attention_bias", false},
                {"hidden_act", "silu"}, {"bos_token_id", nullptr}, {"eos_token_id", 151645}, {"torch_dtype", "bfloat16"}};
  };
  if (shape == "qwen3-next-80b-a3b") return qwen_hybrid("Qwen3NextForCausalLM", "qwen3_next", 151936, 48, 512, 10, 262144);
  if (shape == "qwen3.5-35b-a3b") return qwen_hybrid("Qwen3_5MoeForCausalLM", "qwen3_5_moe_text", 248320, 40, 256, 8, 262144);
  if (shape == "gpt-oss-120b") return gpt_oss(36, 128);
  if (shape == "gpt-oss-20b") return gpt_oss(24, 32);
  if (shape == "glm-4.5") return glm(5120, 12288, 1536, 92, 160, 3, 2.5, true);
  if (shape == "glm-4.5-air") return glm(4096, 10944, 1408, 46, 128, 1, 1.0, false);
  throw std::invalid_argument(fmt::format("--shape '{}' is unknown; choose one of: {}", shape, kShapes));
}

struct Opts {
  std::string shape, experts = "auto", out;
  uint64_t seed = 1;
  int layers = 0;  // 0: the shape's own count
  int group = 128, threads = 0;
  std::string dense = "bf16";
};

// Dense matrices that follow --dense (embeddings, routers and vectors keep their format).
bool follows_dense_flag(TensorClass c) {
  return c == TensorClass::Attention || c == TensorClass::LmHead || c == TensorClass::SharedExpert ||
         c == TensorClass::DenseFfn;
}

// A dense tensor's bytes: vectors F32 (norms 1, biases 0), matrices bf16 normal. Row blocks
// are generated in parallel, each from its own seed.
std::vector<uint8_t> synth_dense(const DenseSpec& s, const pack::MatrixLayout& l, uint64_t seed, size_t index,
                                 int threads, const ModelConfig& c) {
  std::vector<uint8_t> buf(l.end(), 0);
  if (l.dtype == DType::F32) {
    // Norms are 1, or 0 where the model scales by (1 + w) (Qwen3-Next; not its gated DeltaNet norm).
    const bool centred = c.norm_plus_one && !s.name.ends_with(".linear.norm");
    fill_f32_const(reinterpret_cast<float*>(buf.data()), s.rows, s.cls == TensorClass::Norm && !centred ? 1.0f : 0.0f);
    return buf;
  }
  const float base = s.cls == TensorClass::Embedding ? 1.0f : s.cls == TensorClass::Router ? kRouterLogitStd : 1.0f;
  const float stddev = s.cls == TensorClass::Embedding ? base : base / std::sqrt(float(s.cols));
  if (l.dtype == DType::I8) {
    Rng rng(mix_seed(seed, index, 0));
    fill_quantized(l, buf.data(), stddev, rng);
    return buf;
  }
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (s.rows + kBlock - 1) / kBlock;
  auto* out = reinterpret_cast<uint16_t*>(buf.data());
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int64_t b = t; b < blocks; b += threads) {
        Rng rng(mix_seed(seed, index, uint64_t(b)));
        const int64_t r0 = b * kBlock, n = std::min(kBlock, s.rows - r0);
        fill_bf16_normal(out + r0 * s.cols, n * s.cols, stddev, rng);
      }
    });
  for (auto& th : pool) th.join();
  return buf;
}

// The routed experts' format, checked against the shape's widths.
QuantOptions synth_expert_target(const Opts& o, const ModelConfig& c) {
  const QuantOptions et = o.experts == "int4"  ? QuantOptions{DType::Q4, o.group, false}
                          : o.experts == "mxfp4" ? QuantOptions{DType::MXFP4, 32, false}
                                                 : QuantOptions{DType::F8E4M3, 0, false};
  if (et.dtype == DType::Q4 && (o.group != 32 && o.group != 64 && o.group != 128))
    throw std::invalid_argument(fmt::format("--group-size {} is not supported; use 32, 64 or 128", o.group));
  if (et.dtype == DType::Q4 && (c.hidden % o.group || c.moe_intermediate % o.group))
    throw std::invalid_argument(fmt::format("--group-size {} does not divide the expert widths {} and {}", o.group,
                                            c.hidden, c.moe_intermediate));
  return et;
}

// What the pack will hold: dense layouts (in dense_specs order), one record layout per MoE
// layer, every (layer, expert) record in write order, and the bytes to write.
struct SynthPlan {
  std::vector<DenseSpec> specs;
  std::vector<pack::MatrixLayout> dense;
  std::vector<pack::LayerLayout> layers;
  std::vector<std::pair<int, int>> items;
  uint64_t total = 0;
};

SynthPlan plan_outputs(const ModelConfig& c, const Opts& o, const QuantOptions& et) {
  SynthPlan p;
  p.specs = dense_specs(c);
  for (const auto& s : p.specs) {
    uint64_t cursor = 0;
    const DType dt = s.cols == 1 ? DType::F32 : (o.dense == "int8" && follows_dense_flag(s.cls)) ? DType::I8 : DType::BF16;
    p.dense.push_back(pack::place_matrix(dt, 0, s.rows, s.cols, &cursor));
    p.total += cursor;
  }
  for (int l = 0; l < c.n_layers; ++l) {
    if (c.ffn[size_t(l)] != FfnKind::Moe) continue;
    p.layers.push_back(pack::plan_expert_layer(uint32_t(l), uint32_t(c.router.n_experts), c.moe_intermediate, c.hidden, et));
    for (int e = 0; e < c.router.n_experts; ++e) p.items.push_back({l, e});
    p.total += pack::align_up(p.layers.back().raw_bytes, pack::kPage) * uint64_t(c.router.n_experts);
  }
  return p;
}

// Expert records generated in parallel (each from its own seed) and written in plan order.
void write_experts(pack::PackWriter& w, const ModelConfig& c, const SynthPlan& p, uint64_t seed, int threads,
                   Progress& prog) {
  for (const auto& L : p.layers) w.add_expert_layer(L);
  std::map<int, const pack::LayerLayout*> layout_of;
  for (const auto& L : p.layers) layout_of[int(L.layer)] = &L;
  run_ordered<pack::EncodedRecord>(
      p.items.size(), threads, size_t(threads) * 4,
      [&](size_t i) {
        const auto [l, e] = p.items[i];
        const pack::LayerLayout& L = *layout_of.at(l);
        std::vector<uint8_t> raw(L.raw_bytes, 0);
        Rng rng(mix_seed(seed, (uint64_t(1) << 32) | uint64_t(l), uint64_t(e)));
        fill_quantized(L.gate, raw.data(), 1.0f / std::sqrt(float(c.hidden)), rng);
        fill_quantized(L.up, raw.data(), 1.0f / std::sqrt(float(c.hidden)), rng);
        fill_quantized(L.down, raw.data(), 1.0f / std::sqrt(float(c.moe_intermediate)), rng);
        return pack::encode_record(std::move(raw), {});
      },
      [&](size_t i, pack::EncodedRecord& rec) {
        w.add_record(uint32_t(p.items[i].first), uint32_t(p.items[i].second), rec);
        prog.set(w.bytes_written());
      });
}

json synth_manifest(const ModelConfig& c, const json& cfg_json, const Opts& o, const QuantOptions& et) {
  const json gen = {{"bos_token_id", 1495}, {"eos_token_id", {1497, 1495}}};
  return {{"format", "moepack"},
          {"format_version", pack::kVersion},
          {"architecture", c.architecture},
          {"files",
           {{"config.json", cfg_json.dump(2)},
            {"generation_config.json", gen.dump(2)},
            {"tokenizer.json", std::string(synth_tokenizer_json())},
            {"tokenizer_config.json", std::string(synth_tokenizer_config_json())}}},
          {"quantization",
           {{"experts", {{"dtype", dtype_name(et.dtype)}, {"group", et.group}, {"clip_search", false}}},
            {"dense", {{"dtype", o.dense == "int8" ? "I8" : "BF16"}}},
            {"embedding", "BF16"},
            {"norms_biases_routers", "norms and biases F32, routers BF16"}}},
          {"compression", {{"experts", "none"}}},
          {"nmse", json::object()},
          {"source", {{"kind", "synth"}, {"shape", o.shape}, {"layers", c.n_layers}, {"seed", o.seed}}},
          {"synth",
           {{"router_logit_std", kRouterLogitStd},
            {"weights", "matrices N(0, 1/cols), embedding N(0, 1), router N(0, (1.5/sqrt(hidden))^2), norms 1, biases 0"},
            {"tokenizer", "tests/fixtures/qwen3_moe (byte-level BPE, 1500 ids)"}}},
          {"writer", "moe synth"}};
}

int run_synth(const Opts& opts) {
  json cfg_json = shape_config(opts.shape);
  if (opts.layers > 0) {
    const int real = cfg_json["num_hidden_layers"].get<int>();
    if (opts.layers > real)
      throw std::invalid_argument(fmt::format("--layers {}: the {} shape has {} layers", opts.layers, opts.shape, real));
    cfg_json["num_hidden_layers"] = opts.layers;  // the first N layers: their shapes stay real
    if (cfg_json.contains("layer_types")) {
      json& t = cfg_json["layer_types"];
      t.erase(t.begin() + opts.layers, t.end());
    }
  }
  const ModelConfig c = parse_model_config(cfg_json, "moe synth --shape " + opts.shape);
  Opts o = opts;
  if (o.experts == "auto") o.experts = c.architecture == "GptOssForCausalLM" ? "mxfp4" : "int4";  // as each ships
  if (o.experts != "int4" && o.experts != "fp8" && o.experts != "mxfp4")
    throw std::invalid_argument(fmt::format("--experts {}: moe synth writes int4, fp8 or mxfp4 experts", o.experts));
  const QuantOptions et = synth_expert_target(o, c);
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  const SynthPlan plan = plan_outputs(c, o, et);

  pack::PackWriter w(o.out, uint32_t(c.n_layers));
  Progress prog("synth", plan.total);
  for (size_t i = 0; i < plan.specs.size(); ++i) {
    const auto buf = synth_dense(plan.specs[i], plan.dense[i], o.seed, i, threads, c);
    w.add_dense(plan.specs[i].name, plan.dense[i], buf.data());
    prog.set(w.bytes_written());
  }
  write_experts(w, c, plan, o.seed, threads, prog);
  prog.finish();
  w.finish(synth_manifest(c, cfg_json, o, et));
  const double secs = prog.seconds();
  std::printf("%s\n", fmt::format("wrote {}: {} in {:.1f} s ({}/s); {} {} experts x {} layers, seed {}", o.out,
                                  human_bytes(double(w.bytes_written())), secs,
                                  human_bytes(double(w.bytes_written()) / std::max(secs, 1e-9)), o.shape, o.experts,
                                  plan.layers.size(), o.seed)
                          .c_str());
  return 0;
}

}  // namespace

Runner add_synth(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("synth", "Write a random-weight .moepack with a real model's dimensions (for benchmarks)");
  c->add_option("--shape", o->shape, kShapes)->required();
  c->add_option("--layers", o->layers,
                "Keep the first N decoder layers (a 671B shape's per-layer figures on a small disk)")
      ->check(CLI::PositiveNumber);
  c->add_option("--experts", o->experts, "Expert format: int4, fp8 or mxfp4 (auto: mxfp4 for gpt-oss, else int4)")
      ->capture_default_str();
  c->add_option("--group-size", o->group, "INT4 group size: 32, 64 or 128")->capture_default_str();
  c->add_option("--out,-o", o->out, "Output .moepack file")->required();
  c->add_option("--dense", o->dense, "Format of attention, LM-head and shared-expert matrices: bf16 or int8")
      ->check(CLI::IsMember({"bf16", "int8"}))
      ->capture_default_str();
  c->add_option("--seed", o->seed, "Random seed; the same seed writes the same file")->capture_default_str();
  c->add_option("--threads,-t", o->threads, "Generator threads (0 = all cores)");
  return [o] { return run_synth(*o); };
}

}  // namespace moe::cli
