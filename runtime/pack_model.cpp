#include "runtime/pack_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace moe {
namespace {

// Calls f(name, class, slot, rows, cols) for every non-expert tensor the config implies,
// in pack order. M is Model or const Model: the one list serves writer and loader.
template <class M, class F>
void visit_dense(M& m, F&& f) {
  const ModelConfig& c = m.cfg;
  const int64_t H = c.hidden, hd = c.head_dim, qd = int64_t(c.n_heads) * hd, kvd = int64_t(c.n_kv_heads) * hd;
  using TC = TensorClass;
  f(std::string("embed"), TC::Embedding, m.embed, c.vocab_size, H);
  f(std::string("final_norm"), TC::Norm, m.final_norm, H, 1);
  f(std::string("lm_head"), TC::LmHead, m.lm_head, c.vocab_size, H);
  for (int i = 0; i < c.n_layers; ++i) {
    auto& L = m.layers[size_t(i)];
    const std::string p = fmt::format("layers.{}.", i);
    f(p + "attn_norm", TC::Norm, L.attn_norm, H, 1);
    f(p + "ffn_norm", TC::Norm, L.ffn_norm, H, 1);
    if (c.is_linear(i)) {
      const LinearAttnConfig& l = c.linear;
      const int64_t kd = int64_t(l.n_k_heads) * l.k_dim, vd = int64_t(l.n_v_heads) * l.v_dim;
      auto& w = L.linear;
      f(p + "linear.qkv", TC::Attention, w.qkv, 2 * kd + vd, H);
      f(p + "linear.z", TC::Attention, w.z, vd, H);
      f(p + "linear.b", TC::Router, w.b, int64_t(l.n_v_heads), H);  // tiny and gating: kept exact
      f(p + "linear.a", TC::Router, w.a, int64_t(l.n_v_heads), H);
      f(p + "linear.conv", TC::Norm, w.conv, l.conv_dim(), int64_t(l.conv_kernel));
      f(p + "linear.dt_bias", TC::Bias, w.dt_bias, int64_t(l.n_v_heads), 1);
      f(p + "linear.a_log", TC::Bias, w.a_log, int64_t(l.n_v_heads), 1);
      f(p + "linear.norm", TC::Norm, w.norm, int64_t(l.v_dim), 1);
      f(p + "linear.out", TC::Attention, w.out, H, vd);
    } else if (c.is_mla()) {
      const MlaConfig& ml = c.mla;
      const int64_t nh = c.n_heads;
      if (ml.q_lora_rank > 0) {
        f(p + "attn.q_a", TC::Attention, L.attn.q_a, ml.q_lora_rank, H);
        f(p + "attn.q_a_norm", TC::Norm, L.attn.q_a_norm, ml.q_lora_rank, 1);
        f(p + "attn.q_b", TC::Attention, L.attn.q_b, nh * ml.qk_head_dim(), ml.q_lora_rank);
      } else {
        f(p + "attn.q", TC::Attention, L.attn.q, nh * ml.qk_head_dim(), H);
      }
      f(p + "attn.kv_a", TC::Attention, L.attn.kv_a, int64_t(ml.kv_lora_rank) + ml.qk_rope_head_dim, H);
      f(p + "attn.kv_a_norm", TC::Norm, L.attn.kv_a_norm, ml.kv_lora_rank, 1);
      f(p + "attn.kv_b", TC::Attention, L.attn.kv_b, nh * (int64_t(ml.qk_nope_head_dim) + ml.v_head_dim), ml.kv_lora_rank);
      f(p + "attn.o", TC::Attention, L.attn.o, H, nh * ml.v_head_dim);
    } else {
      f(p + "attn.q", TC::Attention, L.attn.q, c.attn_output_gate ? 2 * qd : qd, H);
      f(p + "attn.k", TC::Attention, L.attn.k, kvd, H);
      f(p + "attn.v", TC::Attention, L.attn.v, kvd, H);
      f(p + "attn.o", TC::Attention, L.attn.o, H, qd);
    }
    if (c.qkv_bias && !c.is_linear(i)) {
      f(p + "attn.q_bias", TC::Bias, L.attn.q_bias, c.attn_output_gate ? 2 * qd : qd, 1);
      f(p + "attn.k_bias", TC::Bias, L.attn.k_bias, kvd, 1);
      f(p + "attn.v_bias", TC::Bias, L.attn.v_bias, kvd, 1);
    }
    if (c.o_bias && !c.is_linear(i)) f(p + "attn.o_bias", TC::Bias, L.attn.o_bias, H, 1);
    if (c.attention_sinks) f(p + "attn.sinks", TC::Bias, L.attn.sinks, int64_t(c.n_heads), 1);
    if (c.qk_norm != QkNorm::None && !c.is_linear(i)) {
      const bool per_head = c.qk_norm == QkNorm::PerHead;
      f(p + "attn.q_norm", TC::Norm, L.attn.q_norm, per_head ? hd : qd, 1);
      f(p + "attn.k_norm", TC::Norm, L.attn.k_norm, per_head ? hd : kvd, 1);
    }
    if (c.ffn[size_t(i)] == FfnKind::Dense) {
      const int64_t I = c.dense_intermediate;
      f(p + "mlp.gate", TC::DenseFfn, L.dense.gate, I, H);
      f(p + "mlp.up", TC::DenseFfn, L.dense.up, I, H);
      f(p + "mlp.down", TC::DenseFfn, L.dense.down, H, I);
      continue;
    }
    f(p + "router", TC::Router, L.router, int64_t(c.router.n_experts), H);
    if (c.router.correction_bias) f(p + "router_bias", TC::Bias, L.router_bias, int64_t(c.router.n_experts), 1);
    if (c.router_bias) f(p + "router_logit_bias", TC::Bias, L.router_logit_bias, int64_t(c.router.n_experts), 1);
    if (c.expert_biases) {
      const int64_t E = c.router.n_experts, I = c.moe_intermediate;
      f(p + "experts.gate_bias", TC::Bias, L.expert_gate_bias, E * I, 1);
      f(p + "experts.up_bias", TC::Bias, L.expert_up_bias, E * I, 1);
      f(p + "experts.down_bias", TC::Bias, L.expert_down_bias, E * H, 1);
    }
    if (c.shared_intermediate > 0) {
      const int64_t S = c.shared_intermediate;
      f(p + "shared.gate", TC::SharedExpert, L.shared.gate, S, H);
      f(p + "shared.up", TC::SharedExpert, L.shared.up, S, H);
      f(p + "shared.down", TC::SharedExpert, L.shared.down, H, S);
    }
    if (c.shared_expert_gate) f(p + "shared_gate", TC::SharedExpertGate, L.shared_gate, 1, H);
  }
}

[[noreturn]] void bad_pack(const PackFile& pack, const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}; the pack does not match its embedded config.json: re-run moe convert",
                                       pack.path().string(), what));
}

}  // namespace

std::string_view tensor_class_name(TensorClass c) {
  switch (c) {
    case TensorClass::Embedding: return "embedding";
    case TensorClass::LmHead: return "lm_head";
    case TensorClass::Norm: return "norm";
    case TensorClass::Attention: return "attention";
    case TensorClass::Bias: return "bias";
    case TensorClass::Router: return "router";
    case TensorClass::SharedExpert: return "shared_expert";
    case TensorClass::SharedExpertGate: return "shared_expert_gate";
    case TensorClass::DenseFfn: return "dense_ffn";
  }
  return "?";
}

std::vector<DenseTensor> dense_tensors(const Model& m) {
  std::vector<DenseTensor> out;
  visit_dense(m, [&](const std::string& name, TensorClass cls, const WeightView& v, int64_t rows, int64_t cols) {
    if (cls == TensorClass::LmHead && v.data == m.embed.data) return;  // tied
    if (v.empty() || v.rows != rows || v.cols != cols)
      throw std::logic_error(fmt::format("dense_tensors: '{}' is missing or not [{}, {}]", name, rows, cols));
    out.push_back({name, cls, v});
  });
  return out;
}

std::vector<DenseSpec> dense_specs(const ModelConfig& cfg) {
  Model m;  // only its cfg and layer count are read
  m.cfg = cfg;
  m.layers.resize(size_t(cfg.n_layers));
  std::vector<DenseSpec> out;
  visit_dense(m, [&](const std::string& name, TensorClass cls, WeightView&, int64_t rows, int64_t cols) {
    if (cls == TensorClass::LmHead && cfg.tie_embeddings) return;
    out.push_back({name, cls, rows, cols});
  });
  return out;
}

ModelConfig pack_model_config(const PackFile& pack) {
  ModelConfig c = parse_model_config_text(pack.embedded_file("config.json"),
                                          pack.path().string() + " (embedded config.json)");
  // generation_config.json, when embedded, has the authoritative stop tokens (as for a directory).
  const std::string gen = pack.embedded_file("generation_config.json");
  if (!gen.empty())
    apply_generation_config_text(c, gen, pack.path().string() + " (embedded generation_config.json)");
  return c;
}

MappedPackExperts::MappedPackExperts(std::shared_ptr<const PackFile> pack, bool verify)
    : pack_(std::move(pack)), verify_(verify) {
  slots_.resize(size_t(pack_->n_layers()));
  for (int l = 0; l < pack_->n_layers(); ++l) slots_[size_t(l)].resize(size_t(pack_->n_experts(l)));
}

ExpertWeights MappedPackExperts::acquire(int layer, int expert) {
  std::lock_guard<std::mutex> lock(mu_);
  Slot& s = slots_.at(size_t(layer)).at(size_t(expert));
  if (s.ready) return s.w;
  const ExpertRecordRef& r = pack_->record(layer, expert);
  const uint8_t* stored = pack_->stored(layer, expert);
  if (r.compressed) {
    // 4 KiB aligned like a tier's buffer, so kernels see the same alignment either way.
    auto* p = static_cast<uint8_t*>(std::aligned_alloc(pack::kPage, pack::align_up(r.raw_bytes, pack::kPage)));
    if (!p) throw std::bad_alloc();
    s.owned = std::shared_ptr<uint8_t>(p, std::free);
    pack_->decode(layer, expert, stored, p, verify_);
    s.w = pack_->views(layer, expert, p);
  } else {
    if (verify_) pack_->verify_record(layer, expert);
    s.w = pack_->views(layer, expert, stored);
  }
  s.ready = true;
  return s.w;
}

Model load_pack_model(const std::filesystem::path& path, const PackLoadOptions& opt) {
  return load_pack_model(std::make_shared<const PackFile>(path), opt);
}

Model load_pack_model(std::shared_ptr<const PackFile> pack, const PackLoadOptions& opt) {
  if (opt.verify_dense) pack->verify_dense();
  Model m;
  m.cfg = pack_model_config(*pack);
  const ModelConfig& c = m.cfg;
  if (pack->n_layers() != c.n_layers)
    bad_pack(*pack, fmt::format("{} layers in the table, {} in config.json", pack->n_layers(), c.n_layers));
  m.layers.resize(size_t(c.n_layers));
  for (int i = 0; i < c.n_layers; ++i) m.layers[size_t(i)].kind = c.ffn[size_t(i)];
  visit_dense(m, [&](const std::string& name, TensorClass cls, WeightView& slot, int64_t rows, int64_t cols) {
    const pack::DenseEntry* e = pack->find_dense(name);
    if (!e && cls == TensorClass::LmHead && c.tie_embeddings) {
      slot = m.embed;
      return;
    }
    if (!e) bad_pack(*pack, fmt::format("tensor '{}' is missing", name));
    if (e->m.rows != rows || e->m.cols != cols)
      bad_pack(*pack, fmt::format("tensor '{}' is [{}, {}], expected [{}, {}]", name, e->m.rows, e->m.cols, rows, cols));
    slot = pack->dense_view(*e);
  });
  for (int i = 0; i < c.n_layers; ++i) {
    const bool moe = c.ffn[size_t(i)] == FfnKind::Moe;
    const int n = pack->n_experts(i);
    if (n != (moe ? c.router.n_experts : 0))
      bad_pack(*pack, fmt::format("layer {} has {} expert records, expected {}", i, n, moe ? c.router.n_experts : 0));
    if (!moe) continue;
    const auto& l = pack->metadata().layers;
    const auto it = std::find_if(l.begin(), l.end(), [&](const pack::LayerLayout& x) { return int(x.layer) == i; });
    if (it->gate.rows != c.moe_intermediate || it->gate.cols != c.hidden)
      bad_pack(*pack, fmt::format("layer {} experts are [{}, {}], expected [{}, {}]", i, it->gate.rows, it->gate.cols,
                                  c.moe_intermediate, c.hidden));
  }
  m.experts = opt.make_experts ? opt.make_experts(pack, m.cfg) : std::make_unique<MappedPackExperts>(pack, opt.verify_experts);
  m.storage = pack;
  return m;
}

Model load_model(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) return load_pack_model(path);
  if (!std::filesystem::exists(path, ec) && path.extension() == ".moepack")
    throw std::runtime_error(fmt::format("{}: no such file; give a .moepack written by moe convert or moe synth",
                                         path.string()));
  return load_hf_model(path);  // a directory, or a missing one: its message names config.json
}

}  // namespace moe
