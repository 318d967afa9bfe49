// moe inspect: what a model is, how big, and what one token costs.
#include <cstdio>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "runtime/model.h"
#include "storage/checkpoint.h"
#include "runtime/pack_model.h"
#include "session/session.h"
#include "tools/commands.h"

namespace moe::cli {

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
    };
    if (o->json) {
      std::printf("%s\n", j.dump(2).c_str());
      return 0;
    }
    auto row = [](const char* k, const std::string& v) { std::printf("%-24s %s\n", k, v.c_str()); };
    row("architecture", cfg.architecture);
    row("layers", fmt::format("{} ({} with routed experts)", cfg.n_layers, cfg.n_moe_layers()));
    row("hidden / vocab", fmt::format("{} / {}", cfg.hidden, cfg.vocab_size));
    row("attention", fmt::format("{} heads, {} kv heads, head_dim {}", cfg.n_heads, cfg.n_kv_heads, cfg.head_dim));
    row("experts", fmt::format("{} per layer, top-{}, width {}{}", cfg.router.n_experts, cfg.router.top_k,
                               cfg.moe_intermediate,
                               cfg.shared_intermediate ? fmt::format(", shared expert width {}", cfg.shared_intermediate) : ""));
    row("parameters", fmt::format("{} total, {} active per token", p.total, p.active));
    row("bytes per expert", fmt::format("{} ({} parameters, {})", expert_bytes, p.per_expert, dtype_name(expert_dtype)));
    row("checkpoint", fmt::format("{} bytes, {} expert layout", file_bytes, layout));
    row("cuda", describe_cuda_devices());
    return 0;
  };
}

}  // namespace moe::cli
