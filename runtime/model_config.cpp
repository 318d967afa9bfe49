#include "runtime/model_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numbers>
#include <stdexcept>

namespace moe {
namespace {

using nlohmann::json;

struct Reader {
  const json& j;
  const std::string& file;

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw std::runtime_error(fmt::format("{}: field '{}' {}", file, key, what));
  }
  bool has(const std::string& k) const { return j.contains(k) && !j[k].is_null(); }
  int64_t integer(const std::string& k) const {
    if (!has(k)) fail(k, "is missing");
    if (!j[k].is_number_integer()) fail(k, "must be an integer");
    return j[k].get<int64_t>();
  }
  int64_t integer(const std::string& k, int64_t def) const { return has(k) ? integer(k) : def; }
  int64_t positive(const std::string& k) const {
    const int64_t v = integer(k);
    if (v <= 0) fail(k, fmt::format("must be positive, got {}", v));
    return v;
  }
  double number(const std::string& k, double def) const {
    if (!has(k)) return def;
    if (!j[k].is_number()) fail(k, "must be a number");
    return j[k].get<double>();
  }
  bool boolean(const std::string& k, bool def) const {
    if (!has(k)) return def;
    if (!j[k].is_boolean()) fail(k, "must be true or false");
    return j[k].get<bool>();
  }
};

RopeConfig parse_rope(const Reader& r) {
  // transformers >= 5 writes rope_parameters; older configs rope_theta + rope_scaling.
  json p = json::object();
  if (r.has("rope_parameters")) {
    p = r.j["rope_parameters"];
  } else {
    if (r.has("rope_scaling")) p = r.j["rope_scaling"];
    if (r.has("rope_theta")) p["rope_theta"] = r.j["rope_theta"];
  }
  if (!p.is_object()) r.fail("rope_parameters", "must be an object");
  const Reader pr{p, r.file};
  RopeConfig rope;
  rope.theta = pr.number("rope_theta", 10000.0);
  std::string type = "default";
  if (pr.has("rope_type")) type = p["rope_type"].get<std::string>();
  else if (pr.has("type")) type = p["type"].get<std::string>();
  if (type == "default") return rope;
  rope.factor = pr.number("factor", 1.0);
  if (type == "linear") {
    rope.type = RopeType::Linear;
  } else if (type == "yarn") {
    rope.type = RopeType::Yarn;
    rope.original_max_position = pr.integer("original_max_position_embeddings", r.integer("max_position_embeddings"));
    if (!pr.has("factor")) rope.factor = double(r.integer("max_position_embeddings")) / double(rope.original_max_position);
    rope.beta_fast = pr.number("beta_fast", 32.0);
    rope.beta_slow = pr.number("beta_slow", 1.0);
    rope.truncate = pr.boolean("truncate", true);
    auto mscale = [](double scale, double m) { return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0; };
    const double ms = pr.number("mscale", 0.0), ms_all = pr.number("mscale_all_dim", 0.0);
    if (pr.has("attention_factor")) rope.attention_factor = pr.number("attention_factor", 1.0);
    else if (ms != 0.0 && ms_all != 0.0) rope.attention_factor = mscale(rope.factor, ms) / mscale(rope.factor, ms_all);
    else rope.attention_factor = mscale(rope.factor, 1.0);
  } else if (type == "llama3") {
    rope.type = RopeType::Llama3;
    rope.original_max_position = pr.integer("original_max_position_embeddings");
    rope.low_freq_factor = pr.number("low_freq_factor", 1.0);
    rope.high_freq_factor = pr.number("high_freq_factor", 4.0);
  } else {
    r.fail("rope_parameters.rope_type",
           fmt::format("'{}' is not supported (supported: default, linear, yarn, llama3)", type));
  }
  return rope;
}

// Layer i has routed experts unless listed in mlp_only_layers or skipped by decoder_sparse_step.
void sparse_layers(ModelConfig& c, const Reader& r) {
  const int64_t step = r.integer("decoder_sparse_step", 1);
  std::vector<int64_t> only;
  if (r.has("mlp_only_layers")) only = r.j["mlp_only_layers"].get<std::vector<int64_t>>();
  for (int i = 0; i < c.n_layers; ++i) {
    const bool dense = std::find(only.begin(), only.end(), i) != only.end() || c.router.n_experts == 0 ||
                       step <= 0 || (i + 1) % step != 0;
    c.ffn[size_t(i)] = dense ? FfnKind::Dense : FfnKind::Moe;
  }
}

void read_ids(const json& v, std::vector<int32_t>* out) {
  if (v.is_number_integer()) out->push_back(v.get<int32_t>());
  if (v.is_array())
    for (const auto& x : v)
      if (x.is_number_integer()) out->push_back(x.get<int32_t>());
}

}  // namespace

int ModelConfig::n_moe_layers() const { return int(std::count(ffn.begin(), ffn.end(), FfnKind::Moe)); }

std::vector<std::string> supported_architectures() {
  return {"MixtralForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM", "OlmoeForCausalLM"};
}

ModelConfig parse_model_config(const json& j, const std::string& file) {
  const Reader r{j, file};
  if (!j.is_object()) throw std::runtime_error(file + ": not a JSON object");
  if (!r.has("architectures") || !j["architectures"].is_array() || j["architectures"].empty())
    r.fail("architectures", "is missing; cannot tell which model this is");
  ModelConfig c;
  c.architecture = j["architectures"][0].get<std::string>();
  const auto sup = supported_architectures();
  if (std::find(sup.begin(), sup.end(), c.architecture) == sup.end())
    throw std::runtime_error(fmt::format("{}: architecture '{}' is not supported; supported: {}", file, c.architecture,
                                         fmt::join(sup, ", ")));
  c.model_type = j.value("model_type", "");
  c.vocab_size = r.positive("vocab_size");
  c.hidden = r.positive("hidden_size");
  c.n_layers = int(r.positive("num_hidden_layers"));
  c.n_heads = int(r.positive("num_attention_heads"));
  c.n_kv_heads = int(r.integer("num_key_value_heads", c.n_heads));
  c.head_dim = int(r.integer("head_dim", c.hidden / c.n_heads));
  c.rms_eps = r.number("rms_norm_eps", 1e-6);
  c.max_position = r.positive("max_position_embeddings");
  c.rope = parse_rope(r);
  c.tie_embeddings = r.boolean("tie_word_embeddings", false);
  c.ffn.assign(size_t(c.n_layers), FfnKind::Moe);
  if (c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0)
    r.fail("num_key_value_heads", fmt::format("({}) must divide num_attention_heads ({})", c.n_kv_heads, c.n_heads));
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) r.fail("head_dim", fmt::format("must be positive and even, got {}", c.head_dim));

  const std::string& a = c.architecture;
  if (a == "MixtralForCausalLM") {
    c.moe_intermediate = r.positive("intermediate_size");
    c.router.n_experts = int(r.positive(r.has("num_local_experts") ? "num_local_experts" : "num_experts"));
    c.router.top_k = int(r.positive("num_experts_per_tok"));
    c.router.norm_topk_prob = true;  // Mixtral always renormalises its top-k
    c.sliding_window = r.integer("sliding_window", 0);
  } else if (a == "Qwen3MoeForCausalLM" || a == "Qwen2MoeForCausalLM") {
    c.dense_intermediate = r.positive("intermediate_size");
    c.moe_intermediate = r.positive("moe_intermediate_size");
    // transformers >= 5 writes num_local_experts for every family; hub configs num_experts.
    c.router.n_experts = int(r.positive(r.has("num_experts") ? "num_experts" : "num_local_experts"));
    c.router.top_k = int(r.positive("num_experts_per_tok"));
    c.router.norm_topk_prob = r.boolean("norm_topk_prob", false);
    if (r.boolean("use_sliding_window", false)) c.sliding_window = r.integer("sliding_window", 0);
    sparse_layers(c, r);
    if (a == "Qwen3MoeForCausalLM") {
      c.qk_norm = QkNorm::PerHead;
      c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
    } else {
      c.qkv_bias = r.boolean("qkv_bias", true);
      c.shared_intermediate = r.integer("shared_expert_intermediate_size", 0);
      c.shared_expert_gate = c.shared_intermediate > 0;
    }
  } else if (a == "OlmoeForCausalLM") {
    c.moe_intermediate = r.positive("intermediate_size");
    // transformers >= 5 writes num_local_experts for every family; hub configs num_experts.
    c.router.n_experts = int(r.positive(r.has("num_experts") ? "num_experts" : "num_local_experts"));
    c.router.top_k = int(r.positive("num_experts_per_tok"));
    c.router.norm_topk_prob = r.boolean("norm_topk_prob", false);
    c.qk_norm = QkNorm::Full;
    c.clip_qkv = r.number("clip_qkv", 0.0);
    c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
  }
  if (c.router.top_k > c.router.n_experts)
    r.fail("num_experts_per_tok", fmt::format("({}) exceeds the number of experts ({})", c.router.top_k, c.router.n_experts));
  if (r.has("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_id = j["bos_token_id"].get<int32_t>();
  if (r.has("eos_token_id")) read_ids(j["eos_token_id"], &c.eos_ids);
  return c;
}

ModelConfig load_model_config(const std::filesystem::path& dir) {
  const auto path = dir / "config.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open (is '{}' a Hugging Face model directory?)",
                                                path.string(), dir.string()));
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw std::runtime_error(fmt::format("{}: invalid JSON ({})", path.string(), e.what()));
  }
  ModelConfig c = parse_model_config(j, path.string());
  // generation_config.json, when present, has the authoritative stop tokens.
  std::ifstream gin(dir / "generation_config.json");
  if (gin) {
    try {
      const json g = json::parse(gin);
      if (g.contains("eos_token_id") && !g["eos_token_id"].is_null()) {
        c.eos_ids.clear();
        read_ids(g["eos_token_id"], &c.eos_ids);
      }
      if (g.contains("bos_token_id") && g["bos_token_id"].is_number_integer()) c.bos_id = g["bos_token_id"].get<int32_t>();
    } catch (const json::exception& e) {
      throw std::runtime_error(fmt::format("{}: invalid JSON ({})", (dir / "generation_config.json").string(), e.what()));
    }
  }
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
