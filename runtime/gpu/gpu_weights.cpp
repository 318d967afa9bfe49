#include "runtime/gpu/gpu_weights.h"

#include "kernels/cuda/moe_ops.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/qgemv.h"
#include "quant/quantize.h"

namespace moe::gpu {
namespace {

std::shared_ptr<const cuda::DeviceMatrix> upload_matrix(const WeightView& w, Upload how) {
  if (w.empty()) return nullptr;
  if (!uploads_as_f32(w, how) || w.dtype == DType::F32) return std::make_shared<cuda::DeviceMatrix>(w);
  const std::vector<float> f = dequantize(w);
  WeightView v{DType::F32, f.data(), w.rows, w.cols};
  return std::make_shared<cuda::DeviceMatrix>(v);
}

cuda::DeviceBuffer<float> upload_vec(const WeightView& w) {
  if (w.empty()) return {};
  return cuda::upload_f32(w);
}

// An RMSNorm weight; Qwen3-Next stores (1 + w) centred on 0, and the kernels scale by w, as the
// CPU engine's offset norms do (runtime/engine.cpp).
cuda::DeviceBuffer<float> upload_norm(const WeightView& w, bool plus_one) {
  if (w.empty() || !plus_one) return upload_vec(w);
  std::vector<float> v = dequantize(w);
  for (float& e : v) e += 1.0f;
  cuda::DeviceBuffer<float> b(v.size());
  b.upload(v.data(), v.size());
  return b;
}

// MLA's projections, and kv_b_proj split per head into W_UK^T and W_UV, widened to fp32 (as the
// CPU engine's absorb_mla does for float weights; shipped FP8 blocks widen exactly).
void upload_mla(const ModelConfig& c, const AttentionWeights& A, Upload how, GpuLayer& d) {
  d.q_a = upload_linear(A.q_a, {}, how);
  d.q_b = upload_linear(A.q_b, {}, how);
  d.kv_a = upload_linear(A.kv_a, {}, how);
  d.q_a_norm = upload_vec(A.q_a_norm);
  d.kv_a_norm = upload_vec(A.kv_a_norm);
  const MlaConfig& m = c.mla;
  const int64_t nh = c.n_heads, nope = m.qk_nope_head_dim, vd = m.v_head_dim, R = m.kv_lora_rank;
  std::vector<float> uk_t(size_t(nh * R * nope)), uv(size_t(nh * vd * R)), row(static_cast<size_t>(R));
  for (int64_t h = 0; h < nh; ++h) {
    for (int64_t i = 0; i < nope; ++i) {
      dequantize_row(A.kv_b, h * (nope + vd) + i, row.data());
      for (int64_t r = 0; r < R; ++r) uk_t[size_t((h * R + r) * nope + i)] = row[size_t(r)];
    }
    for (int64_t i = 0; i < vd; ++i) dequantize_row(A.kv_b, h * (nope + vd) + nope + i, &uv[size_t((h * vd + i) * R)]);
  }
  d.uk_t = cuda::DeviceBuffer<float>(uk_t.size());
  d.uk_t.upload(uk_t.data(), uk_t.size());
  d.uv = cuda::DeviceBuffer<float>(uv.size());
  d.uv.upload(uv.data(), uv.size());
}

}  // namespace

bool uploads_as_f32(const WeightView& w, Upload how) {
  // The INT8 GEMV reads rows in 16-byte loads: INT8 rows of other widths are widened instead.
  return how == Upload::F32 || (how == Upload::Wide16 && is_16bit_float(w.dtype)) ||
         (w.dtype == DType::I8 && w.cols % 16 != 0);
}

uint64_t upload_bytes(const DenseTensor& t, const ModelConfig& c, Upload how) {
  if (c.is_mla() && t.name.ends_with(".attn.kv_b")) return 0;
  const uint64_t f32 = uint64_t(t.view.rows) * uint64_t(t.view.cols) * sizeof(float);
  switch (t.cls) {
    case TensorClass::Router:  // upload_linear(..., Upload::F32); the DeltaNet gates a / b too
    case TensorClass::SharedExpertGate:
    case TensorClass::Norm:  // upload_vec / upload_norm
    case TensorClass::Bias:
      return f32;
    case TensorClass::Embedding:  // cuda::embed reads F32 / F16 / BF16
      return !is_16bit_float(t.view.dtype) || uploads_as_f32(t.view, how) ? f32 : t.view.bytes();
    default:
      return uploads_as_f32(t.view, how) ? f32 : t.view.bytes();
  }
}

uint64_t mla_absorbed_bytes(const ModelConfig& c) {
  if (!c.is_mla()) return 0;
  return uint64_t(c.n_layers) * uint64_t(c.n_heads) * uint64_t(c.mla.kv_lora_rank) *
         uint64_t(c.mla.qk_nope_head_dim + c.mla.v_head_dim) * sizeof(float);
}

Linear upload_linear(const WeightView& w, const WeightView& bias, Upload how) {
  Linear l;
  l.m = upload_matrix(w, how);
  l.bias = upload_vec(bias);
  return l;
}

void apply(const cuda::DeviceWeight& w, const float* x, int64_t M, float* y, cuda::DenseGemm& gemm,
           cudaStream_t stream) {
  if (M == 0) return;
  if (w.dtype == DType::Q4 || w.dtype == DType::Q4Z || w.dtype == DType::F8E4M3 || w.dtype == DType::I8 ||
      w.dtype == DType::MXFP4)
    cuda::qgemv(x, M, w, y, stream);
  else cuda::dense_gemm(gemm, x, M, w, y, stream);
}

void apply(const Linear& l, const float* x, int64_t M, float* y, cuda::DenseGemm& gemm, cudaStream_t stream) {
  apply(l.m->weight(), x, M, y, gemm, stream);
  if (l.bias.size()) cuda::add_bias(y, l.bias.get(), M, l.m->weight().rows, stream);
}

void apply_same_x(const Linear* const* ls, float* const* ys, size_t n, const float* x, int64_t M, cuda::DenseGemm& gemm,
                  cudaStream_t stream) {
  if (M == 0 || n == 0) return;
  const cuda::DeviceWeight w0 = ls[0]->m->weight();
  bool shared = !is_quantized(w0.dtype);
  std::vector<cuda::DeviceWeight> ws;
  for (size_t i = 0; i < n; ++i) {
    ws.push_back(ls[i]->m->weight());
    shared = shared && ws.back().dtype == w0.dtype && ws.back().cols == w0.cols;
  }
  if (!shared) {
    for (size_t i = 0; i < n; ++i) apply(*ls[i], x, M, ys[i], gemm, stream);
    return;
  }
  cuda::dense_gemm_same_x(gemm, x, M, ws.data(), ys, n, stream);
  for (size_t i = 0; i < n; ++i)
    if (ls[i]->bias.size()) cuda::add_bias(ys[i], ls[i]->bias.get(), M, ws[i].rows, stream);
}

GpuWeights upload_weights(const Model& m, bool wide16, const std::function<void(int, int)>& progress) {
  GpuWeights g;
  const Upload how = wide16 ? Upload::Wide16 : Upload::AsStored;
  // The embedding table is gathered by cuda::embed, which reads F32 / F16 / BF16.
  g.embed = upload_matrix(m.embed, is_16bit_float(m.embed.dtype) ? how : Upload::F32);
  if (m.lm_head.data == m.embed.data && m.lm_head.dtype == m.embed.dtype) g.lm_head.m = g.embed;
  else g.lm_head = upload_linear(m.lm_head, {}, how);
  const bool plus1 = m.cfg.norm_plus_one;
  g.final_norm = upload_norm(m.final_norm, plus1);
  g.bytes = g.embed->bytes() + (g.lm_head.m == g.embed ? 0 : g.lm_head.bytes()) + int64_t(g.final_norm.bytes());
  const int n = int(m.layers.size());
  for (int i = 0; i < n; ++i) {
    const LayerWeights& L = m.layers[size_t(i)];
    GpuLayer d;
    d.attn_norm = upload_norm(L.attn_norm, plus1);
    d.ffn_norm = upload_norm(L.ffn_norm, plus1);
    d.q_norm = upload_norm(L.attn.q_norm, plus1);
    d.k_norm = upload_norm(L.attn.k_norm, plus1);
    d.sinks = upload_vec(L.attn.sinks);
    d.q = upload_linear(L.attn.q, L.attn.q_bias, how);
    d.k = upload_linear(L.attn.k, L.attn.k_bias, how);
    d.v = upload_linear(L.attn.v, L.attn.v_bias, how);
    d.o = upload_linear(L.attn.o, L.attn.o_bias, how);
    if (m.cfg.is_mla()) upload_mla(m.cfg, L.attn, how, d);
    if (m.cfg.is_linear(i)) {
      const LinearAttnWeights& A = L.linear;
      d.lin_qkv = upload_linear(A.qkv, {}, how);
      d.lin_z = upload_linear(A.z, {}, how);
      d.lin_b = upload_linear(A.b, {}, Upload::F32);  // gates, as the router: never rounded activations
      d.lin_a = upload_linear(A.a, {}, Upload::F32);
      d.lin_out = upload_linear(A.out, {}, how);
      d.lin_conv = upload_vec(A.conv);
      d.lin_dt_bias = upload_vec(A.dt_bias);
      d.lin_a_log = upload_vec(A.a_log);
      d.lin_norm = upload_vec(A.norm);
    }
    if (L.kind == FfnKind::Dense) {
      d.gate = upload_linear(L.dense.gate, {}, how);
      d.up = upload_linear(L.dense.up, {}, how);
      d.down = upload_linear(L.dense.down, {}, how);
    } else {
      d.router = upload_linear(L.router, L.router_logit_bias, Upload::F32);
      d.router_corr = upload_vec(L.router_bias);
      d.shared_gate_proj = upload_linear(L.shared.gate, {}, how);
      d.shared_up = upload_linear(L.shared.up, {}, how);
      d.shared_down = upload_linear(L.shared.down, {}, how);
      d.shared_gate = upload_linear(L.shared_gate, {}, Upload::F32);
      d.expert_gate_bias = upload_vec(L.expert_gate_bias);
      d.expert_up_bias = upload_vec(L.expert_up_bias);
      d.expert_down_bias = upload_vec(L.expert_down_bias);
    }
    for (const Linear* l : {&d.q, &d.k, &d.v, &d.o, &d.gate, &d.up, &d.down, &d.router, &d.shared_gate_proj,
                            &d.shared_up, &d.shared_down, &d.shared_gate, &d.q_a, &d.q_b, &d.kv_a, &d.lin_qkv,
                            &d.lin_z, &d.lin_b, &d.lin_a, &d.lin_out})
      g.bytes += l->bytes();
    for (const auto* b : {&d.attn_norm, &d.ffn_norm, &d.q_norm, &d.k_norm, &d.sinks, &d.expert_gate_bias,
                          &d.expert_up_bias, &d.expert_down_bias, &d.q_a_norm, &d.kv_a_norm, &d.uk_t, &d.uv,
                          &d.lin_conv, &d.lin_dt_bias, &d.lin_a_log, &d.lin_norm})
      g.bytes += int64_t(b->bytes());
    g.layers.push_back(std::move(d));
    if (progress) progress(i + 1, n);
  }
  return g;
}

}  // namespace moe::gpu
