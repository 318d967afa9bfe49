// Tensor naming per architecture and load-time validation of an HF checkpoint.
#include <fmt/format.h>

#include "runtime/model.h"
#include "storage/checkpoint.h"

namespace moe {
namespace {

// Names of one family's tensors. Expert tensors come in two layouts: one 2-D tensor
// per expert (hub checkpoints), or fused 3-D tensors per layer (transformers >= 5).
struct Names {
  std::string moe_block;              // "block_sparse_moe" (Mixtral hub) or "mlp"
  std::string e_gate, e_up, e_down;   // per-expert names
};

Names names_for(const ModelConfig& c, bool fused) {
  if (c.architecture == "MixtralForCausalLM" && !fused) return {"block_sparse_moe", "w1", "w3", "w2"};
  return {"mlp", "gate_proj", "up_proj", "down_proj"};
}

FfnWeights ffn(const Checkpoint& ck, const std::string& p, int64_t inter, int64_t hidden) {
  return {ck.matrix(p + "gate_proj.weight", inter, hidden), ck.matrix(p + "up_proj.weight", inter, hidden),
          ck.matrix(p + "down_proj.weight", hidden, inter)};
}

WeightView optional(const Checkpoint& ck, bool present, const std::string& name, int64_t rows) {
  return present ? ck.matrix(name, rows, 1) : WeightView{};
}

}  // namespace

Model load_hf_model(const std::filesystem::path& dir) {
  Model m;
  m.cfg = load_model_config(dir);
  auto ck = std::make_shared<const Checkpoint>(dir);
  m.checkpoint = ck;
  const ModelConfig& c = m.cfg;
  const int64_t H = c.hidden, hd = c.head_dim, qd = int64_t(c.n_heads) * hd, kvd = int64_t(c.n_kv_heads) * hd;

  m.embed = ck->matrix("model.embed_tokens.weight", c.vocab_size, H);
  m.final_norm = ck->matrix("model.norm.weight", H, 1);
  if (c.tie_embeddings && !ck->has("lm_head.weight")) m.lm_head = m.embed;
  else m.lm_head = ck->matrix("lm_head.weight", c.vocab_size, H);

  // Layout is a property of the file: look at the first MoE layer.
  for (int i = 0; i < c.n_layers; ++i)
    if (c.ffn[size_t(i)] == FfnKind::Moe) {
      m.fused_experts = ck->has(fmt::format("model.layers.{}.mlp.experts.gate_up_proj", i));
      break;
    }
  const Names nm = names_for(c, m.fused_experts);

  std::vector<std::vector<ExpertWeights>> experts(size_t(c.n_layers));
  for (int i = 0; i < c.n_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    LayerWeights L;
    L.attn_norm = ck->matrix(p + "input_layernorm.weight", H, 1);
    L.ffn_norm = ck->matrix(p + "post_attention_layernorm.weight", H, 1);
    const std::string a = p + "self_attn.";
    L.attn.q = ck->matrix(a + "q_proj.weight", qd, H);
    L.attn.k = ck->matrix(a + "k_proj.weight", kvd, H);
    L.attn.v = ck->matrix(a + "v_proj.weight", kvd, H);
    L.attn.o = ck->matrix(a + "o_proj.weight", H, qd);
    L.attn.q_bias = optional(*ck, c.qkv_bias, a + "q_proj.bias", qd);
    L.attn.k_bias = optional(*ck, c.qkv_bias, a + "k_proj.bias", kvd);
    L.attn.v_bias = optional(*ck, c.qkv_bias, a + "v_proj.bias", kvd);
    L.attn.o_bias = optional(*ck, c.o_bias, a + "o_proj.bias", H);
    if (c.qk_norm == QkNorm::PerHead) {
      L.attn.q_norm = ck->matrix(a + "q_norm.weight", hd, 1);
      L.attn.k_norm = ck->matrix(a + "k_norm.weight", hd, 1);
    } else if (c.qk_norm == QkNorm::Full) {
      L.attn.q_norm = ck->matrix(a + "q_norm.weight", qd, 1);
      L.attn.k_norm = ck->matrix(a + "k_norm.weight", kvd, 1);
    }
    L.kind = c.ffn[size_t(i)];
    if (L.kind == FfnKind::Dense) {
      L.dense = ffn(*ck, p + "mlp.", c.dense_intermediate, H);
    } else {
      const int E = c.router.n_experts;
      const int64_t I = c.moe_intermediate;
      const std::string b = p + nm.moe_block + ".";
      L.router = ck->matrix(b + "gate.weight", E, H);
      auto& row = experts[size_t(i)];
      if (m.fused_experts) {
        // gate_up_proj [E, 2I, H] (gate rows first), down_proj [E, H, I].
        const auto& gu = ck->require(b + "experts.gate_up_proj", {E, 2 * I, H});
        const auto& dn = ck->require(b + "experts.down_proj", {E, H, I});
        const WeightView gu_all{*gu.dtype, gu.data, E * 2 * I, H}, dn_all{*dn.dtype, dn.data, E * H, I};
        for (int e = 0; e < E; ++e)
          row.push_back({gu_all.row_slice(e * 2 * I, I), gu_all.row_slice(e * 2 * I + I, I), dn_all.row_slice(e * H, H)});
      } else {
        for (int e = 0; e < E; ++e) {
          const std::string x = fmt::format("{}experts.{}.", b, e);
          row.push_back({ck->matrix(x + nm.e_gate + ".weight", I, H), ck->matrix(x + nm.e_up + ".weight", I, H),
                         ck->matrix(x + nm.e_down + ".weight", H, I)});
        }
      }
      if (c.shared_intermediate > 0) L.shared = ffn(*ck, b + "shared_expert.", c.shared_intermediate, H);
      if (c.shared_expert_gate) L.shared_gate = ck->matrix(b + "shared_expert_gate.weight", 1, H);
    }
    m.layers.push_back(L);
  }
  m.experts = std::make_unique<ResidentExperts>(std::move(experts));
  return m;
}

std::vector<int> experts_per_layer(const Model& m) {
  std::vector<int> n;
  for (const LayerWeights& L : m.layers) n.push_back(L.kind == FfnKind::Moe ? m.cfg.router.n_experts : 0);
  return n;
}

int first_moe_layer(const Model& m) {
  for (size_t l = 0; l < m.layers.size(); ++l)
    if (m.layers[l].kind == FfnKind::Moe) return int(l);
  return -1;
}

ParamCounts count_params(const ModelConfig& c) {
  const int64_t H = c.hidden, hd = c.head_dim, qd = int64_t(c.n_heads) * hd, kvd = int64_t(c.n_kv_heads) * hd;
  ParamCounts p;
  p.per_expert = 3 * H * c.moe_intermediate;
  int64_t total = c.vocab_size * H * (c.tie_embeddings ? 1 : 2) + H;
  int64_t unused = 0;
  for (int i = 0; i < c.n_layers; ++i) {
    total += 2 * H + qd * H + 2 * kvd * H + H * qd;
    if (c.qkv_bias) total += qd + 2 * kvd;
    if (c.o_bias) total += H;
    if (c.qk_norm == QkNorm::PerHead) total += 2 * hd;
    if (c.qk_norm == QkNorm::Full) total += qd + kvd;
    if (c.ffn[size_t(i)] == FfnKind::Dense) {
      total += 3 * H * c.dense_intermediate;
    } else {
      total += int64_t(c.router.n_experts) * H + int64_t(c.router.n_experts) * p.per_expert;
      total += 3 * H * c.shared_intermediate + (c.shared_expert_gate ? H : 0);
      unused += int64_t(c.router.n_experts - c.router.top_k) * p.per_expert;
    }
  }
  p.total = total;
  p.active = total - unused;
  return p;
}

}  // namespace moe
