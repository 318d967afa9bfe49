// Tensor naming per architecture and load-time validation of an HF checkpoint.
#include <fmt/format.h>

#include "runtime/model.h"
#include "runtime/model_loader_gpt_oss.h"
#include "runtime/model_loader_linear.h"
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

// DeepSeek / GLM name the shared experts in the plural and never gate them.
std::string shared_prefix(const ModelConfig& c) {
  return c.shared_expert_gate || c.architecture == "Qwen2MoeForCausalLM" ? "shared_expert." : "shared_experts.";
}

WeightView optional(const Checkpoint& ck, bool present, const std::string& name, int64_t rows) {
  return present ? ck.matrix(name, rows, 1) : WeightView{};
}

void load_attention(const Checkpoint& ck, const ModelConfig& c, const std::string& a, AttentionWeights& w) {
  const int64_t H = c.hidden, hd = c.head_dim, qd = int64_t(c.n_heads) * hd, kvd = int64_t(c.n_kv_heads) * hd;
  // With an output gate, q_proj yields [q, gate] per head: twice the rows.
  w.q = ck.matrix(a + "q_proj.weight", c.attn_output_gate ? 2 * qd : qd, H);
  w.k = ck.matrix(a + "k_proj.weight", kvd, H);
  w.v = ck.matrix(a + "v_proj.weight", kvd, H);
  w.o = ck.matrix(a + "o_proj.weight", H, qd);
  w.q_bias = optional(ck, c.qkv_bias, a + "q_proj.bias", c.attn_output_gate ? 2 * qd : qd);
  w.k_bias = optional(ck, c.qkv_bias, a + "k_proj.bias", kvd);
  w.v_bias = optional(ck, c.qkv_bias, a + "v_proj.bias", kvd);
  w.o_bias = optional(ck, c.o_bias, a + "o_proj.bias", H);
  if (c.attention_sinks) w.sinks = ck.matrix(a + "sinks", c.n_heads, 1);
  if (c.qk_norm == QkNorm::PerHead) {
    w.q_norm = ck.matrix(a + "q_norm.weight", hd, 1);
    w.k_norm = ck.matrix(a + "k_norm.weight", hd, 1);
  } else if (c.qk_norm == QkNorm::Full) {
    w.q_norm = ck.matrix(a + "q_norm.weight", qd, 1);
    w.k_norm = ck.matrix(a + "k_norm.weight", kvd, 1);
  }
}

void load_mla(const Checkpoint& ck, const ModelConfig& c, const std::string& a, AttentionWeights& w) {
  const MlaConfig& m = c.mla;
  const int64_t H = c.hidden, nh = c.n_heads;
  if (m.q_lora_rank > 0) {
    w.q_a = ck.matrix(a + "q_a_proj.weight", m.q_lora_rank, H);
    w.q_a_norm = ck.matrix(a + "q_a_layernorm.weight", m.q_lora_rank, 1);
    w.q_b = ck.matrix(a + "q_b_proj.weight", nh * m.qk_head_dim(), m.q_lora_rank);
  } else {
    w.q = ck.matrix(a + "q_proj.weight", nh * m.qk_head_dim(), H);
  }
  w.kv_a = ck.matrix(a + "kv_a_proj_with_mqa.weight", int64_t(m.kv_lora_rank) + m.qk_rope_head_dim, H);
  w.kv_a_norm = ck.matrix(a + "kv_a_layernorm.weight", m.kv_lora_rank, 1);
  w.kv_b = ck.matrix(a + "kv_b_proj.weight", nh * (int64_t(m.qk_nope_head_dim) + m.v_head_dim), m.kv_lora_rank);
  w.o = ck.matrix(a + "o_proj.weight", H, nh * m.v_head_dim);
}

FfnWeights ffn(const Checkpoint& ck, const std::string& p, int64_t inter, int64_t hidden) {
  return {ck.matrix(p + "gate_proj.weight", inter, hidden), ck.matrix(p + "up_proj.weight", inter, hidden),
          ck.matrix(p + "down_proj.weight", hidden, inter)};
}


}  // namespace

namespace {

// Decoder layer `i` (or an MTP layer past the last) with its FFN of kind `kind`; routed experts
// go to `row`.
LayerWeights load_layer(const Checkpoint& ck, const ModelConfig& c, const std::string& base, int i, FfnKind kind,
                        const Names& nm, bool fused, std::vector<ExpertWeights>& row, OwnedTensors& owned) {
  const int64_t H = c.hidden;
  const std::string p = fmt::format("{}layers.{}.", base, i);
  LayerWeights L;
  L.attn_norm = ck.matrix(p + "input_layernorm.weight", H, 1);
  L.ffn_norm = ck.matrix(p + "post_attention_layernorm.weight", H, 1);
  const std::string a = p + "self_attn.";
  L.kind = kind;
  if (i < c.n_layers && c.is_linear(i)) L.linear = load_linear_attn(ck, c, p + "linear_attn.", owned);
  else if (c.is_mla()) load_mla(ck, c, a, L.attn);
  else load_attention(ck, c, a, L.attn);
  if (L.kind == FfnKind::Dense) {
    L.dense = ffn(ck, p + "mlp.", c.dense_intermediate, H);
    return L;
  }
  const int E = c.router.n_experts;
  const int64_t I = c.moe_intermediate;
  const std::string b = p + nm.moe_block + ".";
  if (c.architecture == "GptOssForCausalLM") {
    L.router = ck.matrix(b + "router.weight", E, H);
    L.router_logit_bias = ck.matrix(b + "router.bias", E, 1);
    load_gpt_oss_experts(ck, c, b, L, row, owned);
    return L;
  }
  L.router = ck.matrix(b + "gate.weight", E, H);
  if (c.router.correction_bias) L.router_bias = ck.matrix(b + "gate.e_score_correction_bias", E, 1);
  if (fused) {
    // gate_up_proj [E, 2I, H] (gate rows first), down_proj [E, H, I].
    const auto& gu = ck.require(b + "experts.gate_up_proj", {E, 2 * I, H});
    const auto& dn = ck.require(b + "experts.down_proj", {E, H, I});
    const WeightView gu_all{*gu.dtype, gu.data, E * 2 * I, H}, dn_all{*dn.dtype, dn.data, E * H, I};
    for (int e = 0; e < E; ++e)
      row.push_back({gu_all.row_slice(e * 2 * I, I), gu_all.row_slice(e * 2 * I + I, I), dn_all.row_slice(e * H, H)});
  } else {
    for (int e = 0; e < E; ++e) {
      const std::string x = fmt::format("{}experts.{}.", b, e);
      row.push_back({ck.matrix(x + nm.e_gate + ".weight", I, H), ck.matrix(x + nm.e_up + ".weight", I, H),
                     ck.matrix(x + nm.e_down + ".weight", H, I)});
    }
  }
  if (c.shared_intermediate > 0) L.shared = ffn(ck, b + shared_prefix(c), c.shared_intermediate, H);
  if (c.shared_expert_gate) L.shared_gate = ck.matrix(b + "shared_expert_gate.weight", 1, H);
  return L;
}

}  // namespace

Model load_hf_model(const std::filesystem::path& dir) {
  Model m;
  m.cfg = load_model_config(dir);
  auto ck = std::make_shared<const Checkpoint>(dir);
  m.checkpoint = ck;
  const ModelConfig& c = m.cfg;
  const int64_t H = c.hidden;

  // Qwen3.5's multimodal checkpoints keep the text model under model.language_model.
  const std::string base = ck->has("model.language_model.embed_tokens.weight") ? "model.language_model." : "model.";
  m.embed = ck->matrix(base + "embed_tokens.weight", c.vocab_size, H);
  m.final_norm = ck->matrix(base + "norm.weight", H, 1);
  if (c.tie_embeddings && !ck->has("lm_head.weight")) m.lm_head = m.embed;
  else m.lm_head = ck->matrix("lm_head.weight", c.vocab_size, H);

  auto owned = std::make_shared<OwnedTensors>();
  m.storage = owned;
  // Layout is a property of the file: look at the first MoE layer.
  for (int i = 0; i < c.n_layers; ++i)
    if (c.ffn[size_t(i)] == FfnKind::Moe) {
      m.fused_experts = ck->has(fmt::format("{}layers.{}.mlp.experts.gate_up_proj", base, i));
      break;
    }
  const Names nm = names_for(c, m.fused_experts);

  std::vector<std::vector<ExpertWeights>> experts(size_t(c.n_layers));
  for (int i = 0; i < c.n_layers; ++i)
    m.layers.push_back(load_layer(*ck, c, base, i, c.ffn[size_t(i)], nm, m.fused_experts, experts[size_t(i)], *owned));
  m.experts = std::make_unique<ResidentExperts>(std::move(experts));

  // Multi-token-prediction layers (DeepSeek-V3, GLM-4.5) follow the last decoder layer. They are
  // kept, validated, for speculative decoding; many converted checkpoints drop them.
  for (int k = 0; k < c.mtp_layers; ++k) {
    const int i = c.n_layers + k;
    const std::string p = fmt::format("{}layers.{}.", base, i);
    if (!ck->has(p + "eh_proj.weight")) break;
    MtpLayer t;
    t.eh_proj = ck->matrix(p + "eh_proj.weight", H, 2 * H);
    t.enorm = ck->matrix(p + "enorm.weight", H, 1);
    t.hnorm = ck->matrix(p + "hnorm.weight", H, 1);
    t.head_norm = ck->matrix(p + "shared_head.norm.weight", H, 1);
    const FfnKind kind = c.router.n_experts > 0 ? FfnKind::Moe : FfnKind::Dense;
    t.layer = load_layer(*ck, c, base, i, kind, nm, m.fused_experts, t.experts, *owned);
    m.mtp.push_back(std::move(t));
  }
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
  p.per_expert = 3 * H * c.moe_intermediate + (c.expert_biases ? 2 * c.moe_intermediate + H : 0);
  int64_t total = c.vocab_size * H * (c.tie_embeddings ? 1 : 2) + H;
  int64_t unused = 0;
  const MlaConfig& m = c.mla;
  const int64_t nh = c.n_heads;
  for (int i = 0; i < c.n_layers; ++i) {
    total += 2 * H;
    if (c.is_linear(i)) {
      const LinearAttnConfig& l = c.linear;
      const int64_t kd = int64_t(l.n_k_heads) * l.k_dim, vd = int64_t(l.n_v_heads) * l.v_dim;
      total += (2 * kd + vd) * H + vd * H + 2 * int64_t(l.n_v_heads) * H + l.conv_dim() * l.conv_kernel +
               2 * l.n_v_heads + l.v_dim + H * vd;
    } else if (c.is_mla()) {
      total += m.q_lora_rank > 0 ? H * m.q_lora_rank + m.q_lora_rank + int64_t(m.q_lora_rank) * nh * m.qk_head_dim()
                                 : H * nh * m.qk_head_dim();
      total += H * (int64_t(m.kv_lora_rank) + m.qk_rope_head_dim) + m.kv_lora_rank;
      total += int64_t(m.kv_lora_rank) * nh * (int64_t(m.qk_nope_head_dim) + m.v_head_dim) + nh * m.v_head_dim * H;
    } else {
      total += (c.attn_output_gate ? 2 : 1) * qd * H + 2 * kvd * H + H * qd;
    }
    if (!c.is_linear(i)) {
      if (c.qkv_bias) total += (c.attn_output_gate ? 2 : 1) * qd + 2 * kvd;
      if (c.attention_sinks) total += c.n_heads;
      if (c.o_bias) total += H;
      if (c.qk_norm == QkNorm::PerHead) total += 2 * hd;
      if (c.qk_norm == QkNorm::Full) total += qd + kvd;
    }
    if (c.ffn[size_t(i)] == FfnKind::Dense) {
      total += 3 * H * c.dense_intermediate;
    } else {
      total += int64_t(c.router.n_experts) * H + int64_t(c.router.n_experts) * p.per_expert;
      if (c.router_bias) total += c.router.n_experts;
      total += 3 * H * c.shared_intermediate + (c.shared_expert_gate ? H : 0);
      unused += int64_t(c.router.n_experts - c.router.top_k) * p.per_expert;
    }
  }
  p.total = total;
  p.active = total - unused;
  return p;
}

}  // namespace moe
