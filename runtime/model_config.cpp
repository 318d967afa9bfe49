#include "runtime/model_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>
#include <stdexcept>

#include "storage/mapped_file.h"

namespace moe {
namespace {

using nlohmann::json;

// Upper bounds for the sizes a config may declare: far above any released model, low enough
// that products of a few of them (tensor shapes, parameter counts) cannot overflow int64.
constexpr int64_t kMaxCount = int64_t(1) << 16;  // layers, heads, experts
constexpr int64_t kMaxDim = int64_t(1) << 24;    // vocabulary and hidden/intermediate widths
constexpr int64_t kMaxPos = std::numeric_limits<int32_t>::max();  // positions, token ids

// A value as it appears in the file, cut short so a hostile value cannot flood the message.
std::string shown(const json& v) {
  std::string s = v.dump(-1, ' ', true, json::error_handler_t::replace);
  return s.size() > 40 ? s.substr(0, 40) + "..." : s;
}

struct Reader {
  const json& j;
  const std::string& file;
  std::string prefix = "";  // "rope_parameters." for the nested object, so messages name the full field

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw std::runtime_error(fmt::format("{}: field '{}{}' {}", file, prefix, key, what));
  }
  bool has(const std::string& k) const { return j.contains(k) && !j[k].is_null(); }
  // An integer in [lo, hi]: JSON numbers beyond int64 or the field's type never wrap.
  int64_t integer(const std::string& k, int64_t lo, int64_t hi) const {
    if (!has(k)) fail(k, "is missing");
    return in_range(j[k], k, lo, hi);
  }
  int64_t integer(const std::string& k, int64_t lo, int64_t hi, int64_t def) const {
    return has(k) ? integer(k, lo, hi) : def;
  }
  int64_t in_range(const json& v, const std::string& k, int64_t lo, int64_t hi) const {
    const auto range = [&] { return fmt::format("must be an integer in [{}, {}]", lo, hi); };
    if (!v.is_number_integer()) fail(k, fmt::format("{}, got {}", range(), shown(v)));
    // Unsigned first: a value above INT64_MAX would wrap in get<int64_t>().
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(hi)) fail(k, fmt::format("{}, got {}", range(), shown(v)));
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) fail(k, fmt::format("{}, got {}", range(), shown(v)));
    return x;
  }
  int positive(const std::string& k, int64_t hi = kMaxCount) const { return int(integer(k, 1, hi)); }
  // A finite number with lo < x (or lo <= x when lo_inclusive) and x <= hi.
  double number(const std::string& k, double def, double lo, bool lo_inclusive,
                double hi = std::numeric_limits<double>::max()) const {
    if (!has(k)) return def;
    const double v = j[k].is_number() ? j[k].get<double>() : std::nan("");
    if (!std::isfinite(v) || v < lo || (v == lo && !lo_inclusive) || v > hi)
      fail(k, fmt::format("must be a finite number {} {}{}, got {}", lo_inclusive ? ">=" : ">", lo,
                          hi < std::numeric_limits<double>::max() ? fmt::format(" and <= {}", hi) : "", shown(j[k])));
    return v;
  }
  double number(const std::string& k, double def) const {
    return number(k, def, -std::numeric_limits<double>::max(), true);
  }
  bool boolean(const std::string& k, bool def) const {
    if (!has(k)) return def;
    if (!j[k].is_boolean()) fail(k, fmt::format("must be true or false, got {}", shown(j[k])));
    return j[k].get<bool>();
  }
  std::string string(const std::string& k, const std::string& def) const {
    if (!has(k)) return def;
    if (!j[k].is_string()) fail(k, fmt::format("must be a string, got {}", shown(j[k])));
    return j[k].get<std::string>();
  }
};

RopeConfig parse_rope(const Reader& r) {
  // transformers >= 5 writes rope_parameters; older configs rope_theta + rope_scaling.
  const bool v5 = r.has("rope_parameters");
  const std::string obj = v5 ? "rope_parameters" : "rope_scaling";
  const json p = r.has(obj) ? r.j[obj] : json::object();
  if (!p.is_object()) r.fail(obj, fmt::format("must be an object, got {}", shown(p)));
  const Reader pr{p, r.file, obj + "."};
  RopeConfig rope;
  // theta <= 1 makes every frequency 1 (or inverts them) and yarn divides by log(theta).
  rope.theta = (v5 ? pr : r).number("rope_theta", 10000.0, 1.0, false);
  const std::string type = pr.string("rope_type", pr.string("type", "default"));
  if (type == "default") return rope;
  rope.factor = pr.number("factor", 1.0, 0.0, false);
  if (type == "linear") {
    rope.type = RopeType::Linear;
  } else if (type == "yarn") {
    rope.type = RopeType::Yarn;
    const int64_t max_pos = r.integer("max_position_embeddings", 1, kMaxPos);
    rope.original_max_position = pr.integer("original_max_position_embeddings", 1, kMaxPos, max_pos);
    if (!pr.has("factor")) rope.factor = double(max_pos) / double(rope.original_max_position);
    // Both betas are rotation counts: the ramp's bounds divide by them.
    rope.beta_fast = pr.number("beta_fast", 32.0, 0.0, false);
    rope.beta_slow = pr.number("beta_slow", 1.0, 0.0, false);
    rope.truncate = pr.boolean("truncate", true);
    auto mscale = [](double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; };
    const double ms = pr.number("mscale", 0.0), ms_all = pr.number("mscale_all_dim", 0.0);
    if (pr.has("attention_factor")) rope.attention_factor = pr.number("attention_factor", 1.0, 0.0, false);
    else if (ms != 0.0 && ms_all != 0.0) rope.attention_factor = mscale(rope.factor, ms) / mscale(rope.factor, ms_all);
    else rope.attention_factor = mscale(rope.factor, 1.0);
    if (!std::isfinite(rope.attention_factor) || rope.attention_factor <= 0)
      pr.fail("mscale", fmt::format("and mscale_all_dim give the attention factor {}; it must be positive",
                                    rope.attention_factor));
  } else if (type == "llama3") {
    rope.type = RopeType::Llama3;
    rope.original_max_position = pr.integer("original_max_position_embeddings", 1, kMaxPos);
    rope.low_freq_factor = pr.number("low_freq_factor", 1.0, 0.0, false);
    rope.high_freq_factor = pr.number("high_freq_factor", 4.0, 0.0, false);
    if (rope.high_freq_factor <= rope.low_freq_factor)  // the smoothing divides by their difference
      pr.fail("high_freq_factor", fmt::format("({}) must exceed low_freq_factor ({})", rope.high_freq_factor,
                                              rope.low_freq_factor));
  } else {
    pr.fail("rope_type", fmt::format("'{}' is not supported (supported: default, linear, yarn, llama3)", type));
  }
  return rope;
}

// Layer i has routed experts unless listed in mlp_only_layers or skipped by decoder_sparse_step.
void sparse_layers(ModelConfig& c, const Reader& r) {
  const int64_t step = r.integer("decoder_sparse_step", 1, kMaxCount, 1);
  std::vector<int64_t> only;
  if (r.has("mlp_only_layers")) {
    const json& a = r.j["mlp_only_layers"];
    if (!a.is_array()) r.fail("mlp_only_layers", fmt::format("must be an array of layer indices, got {}", shown(a)));
    for (const json& v : a) only.push_back(r.in_range(v, "mlp_only_layers", 0, c.n_layers - 1));
  }
  for (int i = 0; i < c.n_layers; ++i) {
    const bool dense = std::find(only.begin(), only.end(), i) != only.end() || c.router.n_experts == 0 ||
                       (i + 1) % step != 0;
    c.ffn[size_t(i)] = dense ? FfnKind::Dense : FfnKind::Moe;
  }
}

// eos_token_id / bos_token_id: one id or a list of ids, each a valid int32 token id.
void read_ids(const Reader& r, const std::string& k, std::vector<int32_t>* out) {
  const json& v = r.j[k];
  if (v.is_array()) {
    for (const auto& x : v) out->push_back(int32_t(r.in_range(x, k, 0, kMaxPos)));
  } else {
    out->push_back(int32_t(r.in_range(v, k, 0, kMaxPos)));
  }
}

json parse_json(std::string_view text, const std::string& file) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw std::runtime_error(fmt::format("{}: invalid JSON ({})", file, e.what()));
  }
}

// The text of a config file; a FIFO or device is refused rather than read forever.
std::string read_text(const std::filesystem::path& path) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", path.string()));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}


// The rotary dims of a partial-rotary family: head_dim x partial_rotary_factor, read from the top
// level (hub configs) or rope_parameters (transformers 5), `def` when absent.
int partial_rotary_dims(const Reader& r, int head_dim, double def) {
  const bool v5 = r.has("rope_parameters");
  const Reader rp{v5 ? r.j["rope_parameters"] : r.j, r.file, v5 ? "rope_parameters." : ""};
  const double partial = (rp.has("partial_rotary_factor") ? rp : r).number("partial_rotary_factor", def, 0.0, false, 1.0);
  const int dims = int(double(head_dim) * partial);
  if (dims < 2 || dims % 2 != 0)
    r.fail("partial_rotary_factor",
           fmt::format("({}) of head_dim {} must give an even number of rotary dims", partial, head_dim));
  return dims;
}

// DeepSeek-V2/V3 (and Kimi-K2, which is V3) and GLM-4.5: fine-grained routed experts plus
// ungated shared ones, the first layers dense, group-limited routing; DeepSeek with MLA,
// GLM with partial rotary. Defaults are transformers' where a hub config may omit a field.
void parse_deepseek_like(ModelConfig& c, const Reader& r) {
  const std::string& a = c.architecture;
  const bool v3 = a == "DeepseekV3ForCausalLM", glm = a == "Glm4MoeForCausalLM";
  c.dense_intermediate = r.positive("intermediate_size", kMaxDim);
  c.moe_intermediate = r.positive("moe_intermediate_size", kMaxDim);
  const char* experts_key = r.has("n_routed_experts") ? "n_routed_experts"
                            : r.has("num_local_experts") ? "num_local_experts" : "num_experts";
  c.router.n_experts = int(r.integer(experts_key, 0, kMaxCount, glm ? 128 : v3 ? 256 : 64));
  c.shared_intermediate = r.integer("n_shared_experts", 0, kMaxCount, glm || v3 ? 1 : 2) * c.moe_intermediate;
  c.router.routed_scaling = r.number("routed_scaling_factor", v3 ? 2.5 : 1.0, 0.0, false);
  c.router.norm_topk_prob = r.boolean("norm_topk_prob", glm || v3);
  if (v3 || glm) {
    // transformers' V3 and GLM routers are always sigmoid + correction bias + groups scored by
    // their two best experts, whatever scoring_func/topk_method say.
    const std::string scoring = r.string("scoring_func", "sigmoid");
    if (scoring != "sigmoid") r.fail("scoring_func", fmt::format("'{}' is not supported for {} (only sigmoid)", scoring, a));
    c.router.scoring = RouterScoring::Sigmoid;
    c.router.correction_bias = true;
    c.router.group_score = GroupScore::TopTwoSum;
    c.router.n_groups = int(r.integer("n_group", 1, kMaxCount, v3 ? 8 : 1));
    c.router.topk_groups = int(r.integer("topk_group", 1, c.router.n_groups, v3 ? std::min(4, c.router.n_groups) : 1));
  } else {
    const std::string method = r.string("topk_method", "greedy");
    if (method == "group_limited_greedy") {
      c.router.n_groups = int(r.integer("n_group", 1, kMaxCount));
      c.router.topk_groups = int(r.integer("topk_group", 1, c.router.n_groups));
    } else if (method != "greedy") {
      r.fail("topk_method", fmt::format("'{}' is not supported for {} (greedy, group_limited_greedy)", method, a));
    }
    // transformers' V2 router never renormalises (norm_topk_prob is read but unused).
    c.router.norm_topk_prob = false;
  }
  if (c.router.n_groups > 1) {
    if (c.router.n_experts % c.router.n_groups != 0)
      r.fail("n_group", fmt::format("({}) must divide the number of routed experts ({})", c.router.n_groups,
                                    c.router.n_experts));
    if (c.router.group_score == GroupScore::TopTwoSum && c.router.n_experts / c.router.n_groups < 2)
      r.fail("n_group", fmt::format("({}) leaves fewer than 2 experts per group; a group's score is its two best",
                                    c.router.n_groups));
  }
  const int64_t first_dense = r.integer("first_k_dense_replace", 0, kMaxCount, v3 ? 3 : glm ? 1 : 0);
  const int64_t freq = r.integer("moe_layer_freq", 1, kMaxCount, 1);
  for (int i = 0; i < c.n_layers; ++i)
    c.ffn[size_t(i)] = c.router.n_experts > 0 && i >= first_dense && i % freq == 0 ? FfnKind::Moe : FfnKind::Dense;
  c.mtp_layers = int(r.integer(r.has("num_nextn_predict_layers") ? "num_nextn_predict_layers" : "num_mtp_layers", 0,
                               kMaxCount, 0));
  c.qkv_bias = r.boolean("attention_bias", false);
  if (glm) {
    c.o_bias = false;  // GLM's o_proj never has a bias
    if (r.boolean("use_qk_norm", false)) c.qk_norm = QkNorm::PerHead;
    c.rotary_dim = partial_rotary_dims(r, c.head_dim, 0.5);
    return;
  }
  // MLA. The V3 q path may skip the low-rank bottleneck (q_lora_rank null), as V2-Lite does.
  c.mla.q_lora_rank = int(r.integer("q_lora_rank", 0, kMaxDim, 0));
  c.mla.kv_lora_rank = int(r.integer("kv_lora_rank", 1, kMaxDim));
  c.mla.qk_nope_head_dim = int(r.integer("qk_nope_head_dim", 1, kMaxCount));
  c.mla.qk_rope_head_dim = int(r.integer("qk_rope_head_dim", 2, kMaxCount));
  c.mla.v_head_dim = int(r.integer("v_head_dim", 1, kMaxCount));
  if (c.mla.qk_rope_head_dim % 2 != 0)
    r.fail("qk_rope_head_dim", fmt::format("must be even (RoPE rotates pairs), got {}", c.mla.qk_rope_head_dim));
  c.head_dim = c.mla.qk_head_dim();
  c.n_kv_heads = c.n_heads;  // every head has its own key and value, expanded from the latent
  c.rotary_dim = c.mla.qk_rope_head_dim;
  // V2 rotates complex pairs; V3 follows rope_interleave (default true).
  c.rope_interleaved = v3 ? r.boolean("rope_interleave", true) : true;
  if (c.qkv_bias) r.fail("attention_bias", "is true; multi-head latent attention with biases is not supported");
  // The softmax scale grows with YaRN's mscale_all_dim (squared), as in DeepSeek's code.
  c.attention_scale = 1.0 / std::sqrt(double(c.head_dim));
  if (c.rope.type == RopeType::Yarn) {
    const json p = r.has("rope_parameters") ? r.j["rope_parameters"] : r.j["rope_scaling"];
    const Reader pr{p, r.file, r.has("rope_parameters") ? "rope_parameters." : "rope_scaling."};
    const double all = pr.number("mscale_all_dim", 0.0);
    if (all != 0.0 && c.rope.factor > 1.0) {
      const double m = 0.1 * all * std::log(c.rope.factor) + 1.0;
      c.attention_scale *= m * m;
    }
  }
}

// layer_types, when present: per layer, whether it is `other` rather than "full_attention" (an
// empty vector when the config leaves it to the family's default pattern).
std::vector<bool> layer_types(const Reader& r, int n_layers, const char* other) {
  if (!r.has("layer_types")) return {};
  const json& t = r.j["layer_types"];
  if (!t.is_array() || t.size() != size_t(n_layers))
    r.fail("layer_types", fmt::format("must list one type per layer ({}), got {}", n_layers, shown(t)));
  std::vector<bool> out(static_cast<size_t>(n_layers));
  for (int i = 0; i < n_layers; ++i) {
    const json& v = t[size_t(i)];
    if (v != other && v != "full_attention")
      r.fail("layer_types", fmt::format("entry {} is {}; expected \"{}\" or \"full_attention\"", i, shown(v), other));
    out[size_t(i)] = v == other;
  }
  return out;
}

// gpt-oss: every layer MoE, experts with biases and the clamped SwiGLU, router with a bias
// (top-k of the logits, softmax over them), attention with biases and sinks, sliding and full
// layers alternating (layer_types; transformers' default: even layers slide).
void parse_gpt_oss(ModelConfig& c, const Reader& r) {
  c.moe_intermediate = r.positive("intermediate_size", kMaxDim);
  c.router.n_experts = r.positive(r.has("num_local_experts") ? "num_local_experts" : "num_experts");
  c.router.scoring = RouterScoring::TopKSoftmax;
  c.router_bias = c.expert_biases = true;
  c.expert_act.clamped = true;
  c.expert_act.limit = r.number("swiglu_limit", 7.0, 0.0, false);
  c.expert_act.alpha = r.number("swiglu_alpha", 1.702, 0.0, false);
  c.qkv_bias = c.o_bias = r.boolean("attention_bias", true);
  c.attention_sinks = true;
  const int64_t window = r.integer("sliding_window", 0, kMaxPos, 128);
  c.layer_window.assign(size_t(c.n_layers), 0);
  const std::vector<bool> sliding = layer_types(r, c.n_layers, "sliding_attention");
  for (int i = 0; i < c.n_layers; ++i)
    if (sliding.empty() ? i % 2 == 0 : sliding[size_t(i)]) c.layer_window[size_t(i)] = window;
}

// Qwen3-Next / Qwen3.5-MoE (text): gated DeltaNet layers with gated full attention every
// `full_attention_interval`-th layer (or as layer_types says), partial rotary, (1 + w) norms,
// routed experts plus a sigmoid-gated shared expert.
void parse_qwen3_next(ModelConfig& c, const Reader& r) {
  c.dense_intermediate = r.integer("intermediate_size", 0, kMaxDim, 0);
  c.moe_intermediate = r.positive("moe_intermediate_size", kMaxDim);
  c.router.n_experts = r.positive(r.has("num_experts") ? "num_experts" : "num_local_experts");
  c.router.norm_topk_prob = r.boolean("norm_topk_prob", true);
  c.shared_intermediate = r.integer("shared_expert_intermediate_size", 0, kMaxDim, 0);
  c.shared_expert_gate = c.shared_intermediate > 0;
  c.qk_norm = QkNorm::PerHead;
  c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
  c.attn_output_gate = true;
  c.norm_plus_one = true;
  c.rotary_dim = partial_rotary_dims(r, c.head_dim, 0.25);
  LinearAttnConfig& l = c.linear;
  l.n_k_heads = r.positive("linear_num_key_heads");
  l.n_v_heads = r.positive("linear_num_value_heads");
  l.k_dim = r.positive("linear_key_head_dim");
  l.v_dim = r.positive("linear_value_head_dim");
  l.conv_kernel = int(r.integer("linear_conv_kernel_dim", 1, 64, 4));
  if (l.n_v_heads % l.n_k_heads != 0)
    r.fail("linear_num_value_heads", fmt::format("({}) must be a multiple of linear_num_key_heads ({})", l.n_v_heads,
                                                 l.n_k_heads));
  c.linear_layers = layer_types(r, c.n_layers, "linear_attention");
  if (c.linear_layers.empty()) {
    c.linear_layers.assign(size_t(c.n_layers), false);
    const int64_t every = r.integer("full_attention_interval", 1, kMaxCount, 4);
    for (int i = 0; i < c.n_layers; ++i) c.linear_layers[size_t(i)] = (i + 1) % every != 0;
  }
}

}  // namespace

int ModelConfig::n_moe_layers() const { return int(std::count(ffn.begin(), ffn.end(), FfnKind::Moe)); }

std::vector<std::string> supported_architectures() {
  return {"MixtralForCausalLM",    "Qwen2MoeForCausalLM",   "Qwen3MoeForCausalLM", "OlmoeForCausalLM",
          "DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM", "Glm4MoeForCausalLM",  "GptOssForCausalLM",
          "Qwen3NextForCausalLM",  "Qwen3_5MoeForCausalLM"};
}

int ModelConfig::n_linear_layers() const { return int(std::count(linear_layers.begin(), linear_layers.end(), true)); }

int64_t ModelConfig::kv_bytes_per_token() const {
  return int64_t(n_layers - n_linear_layers()) * kv_floats_per_layer() * int64_t(sizeof(float));
}

int64_t ModelConfig::state_bytes_per_sequence() const {
  return int64_t(n_linear_layers()) * linear.state_floats() * int64_t(sizeof(float));
}

int64_t ModelConfig::kv_floats_per_layer() const {
  if (is_mla()) return int64_t(mla.kv_lora_rank) + mla.qk_rope_head_dim;
  return 2 * int64_t(n_kv_heads) * head_dim;
}

std::string ModelConfig::gpu_unsupported() const {
  // Nothing parsed is out of the GPU engine's reach (gpu::unsupported_reason adds the kernels'
  // shape limits); a family the GPU engine cannot run would be named here. Every router rule
  // routes on the device (kernels/cuda/router.cu); partial and interleaved RoPE are
  // cuda::RopeLayout's; sinks and sliding windows the attention kernels'; expert biases and the
  // clamped SwiGLU gpu_moe.cpp's; MXFP4 experts qgemv_mx4.cu's.
  return "";
}

namespace {

ModelConfig parse_fields(const json& j, const std::string& file) {
  const Reader r{j, file};
  if (!j.is_object()) throw std::runtime_error(file + ": not a JSON object");
  if (!r.has("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
      !j["architectures"][0].is_string())
    r.fail("architectures", "is missing or not a list of class names; cannot tell which model this is");
  ModelConfig c;
  c.architecture = j["architectures"][0].get<std::string>();
  const auto sup = supported_architectures();
  if (std::find(sup.begin(), sup.end(), c.architecture) == sup.end())
    throw std::runtime_error(fmt::format("{}: architecture '{}' is not supported; supported: {}", file, c.architecture,
                                         fmt::join(sup, ", ")));
  c.model_type = r.string("model_type", "");
  c.vocab_size = r.positive("vocab_size", kMaxDim);
  c.hidden = r.positive("hidden_size", kMaxDim);
  c.n_layers = r.positive("num_hidden_layers");
  c.n_heads = r.positive("num_attention_heads");
  c.n_kv_heads = int(r.integer("num_key_value_heads", 1, kMaxCount, c.n_heads));
  if (c.n_heads % c.n_kv_heads != 0)
    r.fail("num_key_value_heads", fmt::format("({}) must divide num_attention_heads ({})", c.n_kv_heads, c.n_heads));
  if (!r.has("head_dim") && c.hidden / c.n_heads < 2)
    r.fail("head_dim", fmt::format("is missing and hidden_size / num_attention_heads ({} / {}) is below 2; set it",
                                   c.hidden, c.n_heads));
  c.head_dim = int(r.integer("head_dim", 2, kMaxCount, c.hidden / c.n_heads));
  if (c.head_dim % 2 != 0) r.fail("head_dim", fmt::format("must be even (RoPE rotates pairs), got {}", c.head_dim));
  // eps < 0 lets the norm divide by zero or a negative number's root; 1 is already absurd.
  c.rms_eps = r.number("rms_norm_eps", 1e-6, 0.0, true, 1.0);
  c.max_position = r.integer("max_position_embeddings", 1, kMaxPos);
  c.rope = parse_rope(r);
  c.tie_embeddings = r.boolean("tie_word_embeddings", false);
  c.ffn.assign(size_t(c.n_layers), FfnKind::Moe);
  c.rotary_dim = c.head_dim;
  c.attention_scale = double(1.0f / std::sqrt(float(c.head_dim)));  // as the float the engines always used

  const std::string& a = c.architecture;
  // transformers >= 5 writes num_local_experts for every family; hub configs num_experts.
  const auto experts = [&](const char* first, const char* second) {
    return r.positive(r.has(first) ? first : second);
  };
  if (a == "MixtralForCausalLM") {
    c.moe_intermediate = r.positive("intermediate_size", kMaxDim);
    c.router.n_experts = experts("num_local_experts", "num_experts");
    c.router.norm_topk_prob = true;  // Mixtral always renormalises its top-k
    c.sliding_window = r.integer("sliding_window", 0, kMaxPos, 0);
  } else if (a == "Qwen3MoeForCausalLM" || a == "Qwen2MoeForCausalLM") {
    c.dense_intermediate = r.positive("intermediate_size", kMaxDim);
    c.moe_intermediate = r.positive("moe_intermediate_size", kMaxDim);
    c.router.n_experts = experts("num_experts", "num_local_experts");
    c.router.norm_topk_prob = r.boolean("norm_topk_prob", false);
    if (r.boolean("use_sliding_window", false)) c.sliding_window = r.integer("sliding_window", 0, kMaxPos, 0);
    if (a == "Qwen3MoeForCausalLM") {
      c.qk_norm = QkNorm::PerHead;
      c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
    } else {
      c.qkv_bias = r.boolean("qkv_bias", true);
      c.shared_intermediate = r.integer("shared_expert_intermediate_size", 0, kMaxDim, 0);
      c.shared_expert_gate = c.shared_intermediate > 0;
    }
  } else if (a == "OlmoeForCausalLM") {
    c.moe_intermediate = r.positive("intermediate_size", kMaxDim);
    c.router.n_experts = experts("num_experts", "num_local_experts");
    c.router.norm_topk_prob = r.boolean("norm_topk_prob", false);
    c.qk_norm = QkNorm::Full;
    c.clip_qkv = r.number("clip_qkv", 0.0, 0.0, true);  // 0: no clamp; a negative limit would clamp nothing
    c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
  }
  if (a == "GptOssForCausalLM") parse_gpt_oss(c, r);
  const bool hybrid = a == "Qwen3NextForCausalLM" || a == "Qwen3_5MoeForCausalLM";
  if (hybrid) parse_qwen3_next(c, r);
  const bool deepseek_like = a == "DeepseekV2ForCausalLM" || a == "DeepseekV3ForCausalLM" || a == "Glm4MoeForCausalLM";
  if (deepseek_like) parse_deepseek_like(c, r);
  c.router.top_k = r.positive("num_experts_per_tok");
  if (c.router.top_k > c.router.n_experts)
    r.fail("num_experts_per_tok", fmt::format("({}) exceeds the number of experts ({})", c.router.top_k, c.router.n_experts));
  if (c.router.n_groups > 1 &&
      int64_t(c.router.top_k) > int64_t(c.router.topk_groups) * (c.router.n_experts / c.router.n_groups))
    r.fail("num_experts_per_tok", fmt::format("({}) exceeds the experts of the topk_group ({}) groups it may choose from",
                                              c.router.top_k, c.router.topk_groups));
  if (!deepseek_like && a != "MixtralForCausalLM" && a != "OlmoeForCausalLM" && a != "GptOssForCausalLM")
    sparse_layers(c, r);
  for (int i = 0; i < c.n_layers; ++i)
    if (c.ffn[size_t(i)] == FfnKind::Dense && c.dense_intermediate <= 0)
      r.fail("intermediate_size", fmt::format("is missing or 0, but layer {} has a dense FFN", i));
  // Each constant can be in range and their mix still overflow (a factor of 1e-300 divides a
  // float by 0): check the frequencies the engine will use.
  for (float f : rope_inv_freq(c.rope, c.rotary_dim))
    if (!std::isfinite(f) || f < 0)
      r.fail(r.has("rope_parameters") ? "rope_parameters" : "rope_scaling",
             fmt::format("gives a non-finite RoPE frequency ({}) for {} rotary dims", f, c.rotary_dim));
  if (r.has("bos_token_id")) c.bos_id = int32_t(r.integer("bos_token_id", 0, kMaxPos));
  if (r.has("eos_token_id")) read_ids(r, "eos_token_id", &c.eos_ids);
  return c;
}

}  // namespace

ModelConfig parse_model_config(const json& j, const std::string& file) {
  try {
    return parse_fields(j, file);
  } catch (const json::exception& e) {  // a type mismatch no check above foresaw: still name the file
    throw std::runtime_error(fmt::format("{}: unexpected value ({})", file, e.what()));
  }
}

ModelConfig parse_model_config_text(std::string_view text, const std::string& file) {
  return parse_model_config(parse_json(text, file), file);
}

void apply_generation_config_text(ModelConfig& c, std::string_view text, const std::string& file) {
  const json g = parse_json(text, file);
  const Reader gr{g, file};
  if (!g.is_object()) throw std::runtime_error(file + ": not a JSON object");
  if (gr.has("eos_token_id")) {
    c.eos_ids.clear();
    read_ids(gr, "eos_token_id", &c.eos_ids);
  }
  if (gr.has("bos_token_id")) c.bos_id = int32_t(gr.integer("bos_token_id", 0, kMaxPos));
}

ModelConfig load_model_config(const std::filesystem::path& dir) {
  const auto path = dir / "config.json";
  if (!std::filesystem::exists(path))
    throw std::runtime_error(fmt::format("{}: cannot open (is '{}' a Hugging Face model directory?)", path.string(),
                                         dir.string()));
  ModelConfig c = parse_model_config_text(read_text(path), path.string());
  // generation_config.json, when present, has the authoritative stop tokens.
  const auto gen_path = dir / "generation_config.json";
  if (std::filesystem::exists(gen_path)) apply_generation_config_text(c, read_text(gen_path), gen_path.string());
  return c;
}

std::vector<float> rope_inv_freq(const RopeConfig& r, int head_dim) {
  const int half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  // fp32 like the reference: base ** (2i / dim) evaluated in float.
  for (int i = 0; i < half; ++i) inv[size_t(i)] = 1.0f / std::pow(float(r.theta), float(2 * i) / float(head_dim));
  switch (r.type) {
    case RopeType::Default: break;
    case RopeType::Linear:
      for (auto& f : inv) f /= float(r.factor);
      break;
    case RopeType::Yarn: {
      const double dim = head_dim, base = r.theta, orig = double(r.original_max_position);
      auto corr = [&](double rot) { return dim * std::log(orig / (rot * 2 * std::numbers::pi)) / (2 * std::log(base)); };
      double low = corr(r.beta_fast), high = corr(r.beta_slow);
      if (r.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, dim - 1);
      if (low == high) high += 0.001;
      for (int i = 0; i < half; ++i) {
        const float ramp = std::clamp((float(i) - float(low)) / float(high - low), 0.0f, 1.0f);
        const float extrap = 1.0f - ramp;
        const float interp = inv[size_t(i)] / float(r.factor);
        inv[size_t(i)] = interp * (1.0f - extrap) + inv[size_t(i)] * extrap;
      }
      break;
    }
    case RopeType::Llama3: {
      const double lo_wl = double(r.original_max_position) / r.low_freq_factor;
      const double hi_wl = double(r.original_max_position) / r.high_freq_factor;
      for (auto& f : inv) {
        const double wl = 2 * std::numbers::pi / f;
        if (wl > lo_wl) {
          f = float(f / r.factor);
        } else if (wl >= hi_wl) {
          const double s = (double(r.original_max_position) / wl - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
          f = float((1 - s) * f / r.factor + s * f);
        }
      }
      break;
    }
  }
  return inv;
}

}  // namespace moe
