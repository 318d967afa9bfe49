// moe inspect: what a model is, how big, and what one token costs.
#include <cstdio>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "runtime/model.h"
#include "storage/checkpoint.h"
#include "runtime/pack_model.h"
#include "session/session.h"
#include "tools/commands.h"
#include "tools/progress.h"

namespace moe::cli {
namespace {

std::string router_summary(const ModelConfig& c) {
  const RouterConfig& r = c.router;
  std::string s = r.scoring == RouterScoring::Sigmoid       ? "sigmoid"
                  : r.scoring == RouterScoring::TopKSoftmax ? "top-k of the logits, softmax over them"
                                                            : "softmax";
  if (c.router_bias) s += " (+ logit bias)";
  if (r.correction_bias) s += " + correction bias";
  if (r.n_groups > 1)
    s += fmt::format(", best {} of {} groups ({})", r.topk_groups, r.n_groups,
                     r.group_score == GroupScore::TopTwoSum ? "top-2 sum" : "max");
  s += fmt::format(", top-{}", r.top_k);
  if (r.norm_topk_prob) s += ", renormalised";
  if (r.routed_scaling != 1.0) s += fmt::format(", x{}", r.routed_scaling);
  return s;
}

// ", window W on N of L layers" when some layers slide.
std::string window_summary(const ModelConfig& c) {
  int n = 0;
  int64_t w = 0;
  for (int l = 0; l < c.n_layers; ++l)
    if (c.window(l) > 0) ++n, w = c.window(l);
  return n ? fmt::format(", window {} on {} of {} layers", w, n, c.n_layers) : "";
}

}  // namespace


Runner add_inspect(CLI::App& app) {
  struct Opts {
    std::string model;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("inspect", "Print architecture, sizes and parameter counts of a model");
  c->add_option("--model,-m", o->model, "Hugging Face model directory or .moepack file")->required();
  c->add_flag("--json", o->json, "Print one JSON object instead of a table");
  return [o] {
    const Model m = load_model(o->model);
    const ModelConfig& cfg = m.cfg;
    const ParamCounts p = count_params(cfg);
    // A pack's size is its file; a directory's, its safetensors shards.
    const uint64_t file_bytes = m.checkpoint ? m.checkpoint->total_bytes() : std::filesystem::file_size(o->model);
    const char* layout = m.checkpoint ? (m.fused_experts ? "fused" : "per-expert") : "pack";
    // The first MoE layer's expert 0 (read once) stands for every expert.
    DType expert_dtype = m.embed.dtype;
    int64_t expert_bytes = 0;
    if (const int first = first_moe_layer(m); first >= 0 && m.experts) {
      const HeldExpert e(*m.experts, first, 0);
      expert_dtype = e.weights().gate.dtype;
      expert_bytes = e.weights().bytes();
    }
    // KV cache per token (the engines keep fp32); MLA's uncompressed equivalent is full K and V
    // per head, as a cache of expanded keys and values would hold.
    const int64_t kv_token = cfg.kv_bytes_per_token();
    const int64_t kv_expanded =
        cfg.is_mla() ? int64_t(cfg.n_layers) * cfg.n_heads * (int64_t(cfg.mla.qk_head_dim()) + cfg.mla.v_head_dim) * 4
                     : kv_token;
    int64_t dense_bytes = 0;
    for (const DenseTensor& d : dense_tensors(m)) dense_bytes += d.view.bytes();
    const int64_t all_experts = expert_bytes * int64_t(cfg.n_moe_layers()) * cfg.router.n_experts;
    nlohmann::json j = {
        {"architecture", cfg.architecture},
        {"layers", cfg.n_layers},
        {"moe_layers", cfg.n_moe_layers()},
        {"hidden_size", cfg.hidden},
        {"attention_heads", cfg.n_heads},
        {"kv_heads", cfg.n_kv_heads},
        {"head_dim", cfg.head_dim},
        {"vocab_size", cfg.vocab_size},
        {"experts", cfg.router.n_experts},
        {"top_k", cfg.router.top_k},
        {"expert_intermediate_size", cfg.moe_intermediate},
        {"shared_expert_intermediate_size", cfg.shared_intermediate},
        {"parameters_total", p.total},
        {"parameters_active", p.active},
        {"parameters_per_expert", p.per_expert},
        {"bytes_per_expert", expert_bytes},
        {"checkpoint_bytes", file_bytes},
        {"expert_layout", layout},
        {"weight_dtype", std::string(dtype_name(m.embed.dtype))},
        {"expert_dtype", std::string(dtype_name(expert_dtype))},
        {"kv_bytes_per_token", kv_token},
        {"kv_bytes_per_token_uncompressed", kv_expanded},
        {"state_bytes_per_sequence", cfg.state_bytes_per_sequence()},
        {"linear_attention_layers", cfg.n_linear_layers()},
        {"dense_bytes", dense_bytes},
        {"expert_bytes_total", all_experts},
        {"router", router_summary(cfg)},
    };
    if (cfg.is_mla())
      j["mla"] = {{"q_lora_rank", cfg.mla.q_lora_rank},           {"kv_lora_rank", cfg.mla.kv_lora_rank},
                  {"qk_nope_head_dim", cfg.mla.qk_nope_head_dim}, {"qk_rope_head_dim", cfg.mla.qk_rope_head_dim},
                  {"v_head_dim", cfg.mla.v_head_dim}};
    if (o->json) {
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    auto row = [](const char* k, const std::string& v) { std::printf("%-24s %s\n", k, v.c_str()); };
    row("architecture", cfg.architecture);
    row("layers", fmt::format("{} ({} with routed experts)", cfg.n_layers, cfg.n_moe_layers()));
    row("hidden / vocab", fmt::format("{} / {}", cfg.hidden, cfg.vocab_size));
    if (cfg.is_mla())
      row("attention", fmt::format("MLA, {} heads, q rank {}, kv rank {}, qk {}+{} (rope), v {}", cfg.n_heads,
                                   cfg.mla.q_lora_rank, cfg.mla.kv_lora_rank, cfg.mla.qk_nope_head_dim,
                                   cfg.mla.qk_rope_head_dim, cfg.mla.v_head_dim));
    else
      row("attention", fmt::format("{} heads, {} kv heads, head_dim {}{}{}{}", cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
                                   cfg.rotary_dim != cfg.head_dim ? fmt::format(" ({} rotary)", cfg.rotary_dim) : "",
                                   cfg.attention_sinks ? ", sinks" : "", window_summary(cfg)));
    row("router", router_summary(cfg));
    row("experts", fmt::format("{} per layer, top-{}, width {}{}", cfg.router.n_experts, cfg.router.top_k,
                               cfg.moe_intermediate,
                               cfg.shared_intermediate ? fmt::format(", shared expert width {}", cfg.shared_intermediate) : ""));
    row("parameters", fmt::format("{} total, {} active per token", p.total, p.active));
    row("bytes per expert", fmt::format("{} ({} parameters, {})", expert_bytes, p.per_expert, dtype_name(expert_dtype)));
    row("checkpoint", fmt::format("{} bytes, {} expert layout", file_bytes, layout));
    row("kv cache / token", cfg.is_mla() ? fmt::format("{} (fp32; {} uncompressed, {:.1f}x smaller)", human_bytes(double(kv_token)),
                                                       human_bytes(double(kv_expanded)), double(kv_expanded) / double(kv_token))
                                         : fmt::format("{} (fp32)", human_bytes(double(kv_token))));
    if (cfg.n_linear_layers() > 0)
      row("recurrent state", fmt::format("{} per sequence ({} gated DeltaNet layers; KV only in the other {})",
                                         human_bytes(double(cfg.state_bytes_per_sequence())), cfg.n_linear_layers(),
                                         cfg.n_layers - cfg.n_linear_layers()));
    row("memory plan", fmt::format("dense {} resident, experts {} (RAM tier or disk), KV {} per 4096-token sequence",
                                   human_bytes(double(dense_bytes)), human_bytes(double(all_experts)),
                                   human_bytes(double(kv_token) * 4096)));
    row("cuda", describe_cuda_devices());
    return 0;
  };
}

}  // namespace moe::cli
