// The dense (non-expert) weights of a model on the GPU, uploaded once: embeddings, norms,
// attention, routers, dense and shared FFNs, LM head. Routed experts are not here: they live
// in the VRAM tier's slots (storage/vram/vram_tier.h).
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "kernels/cuda/dense_gemm.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_weight.h"
#include "runtime/model.h"
#include "runtime/pack_model.h"

namespace moe::gpu {

// A projection y = x W^T (+ b) on the device. Q4/Q4Z/F8/INT8/MXFP4 run through the
// fused-dequantization GEMV; BF16/F16/F32 through cuBLAS. INT8 with K % 16 != 0 is widened to
// F32 at upload (exact, 4x the bytes; uploads_as_f32 decides).
struct Linear {
  std::shared_ptr<const cuda::DeviceMatrix> m;  // null: the model has no such projection
  cuda::DeviceBuffer<float> bias;               // empty: none
  bool empty() const { return m == nullptr; }
  int64_t bytes() const { return m ? m->bytes() + int64_t(bias.bytes()) : 0; }
};

// How a weight is uploaded: as stored (INT8 widened only where K % 16 != 0), F16/BF16 widened to
// F32 too (cuBLAS then multiplies fp32 activations, as the CPU engine does, instead of rounding
// them to 16 bits), or always F32 (routers: their scores pick experts, so they never see rounded
// activations).
enum class Upload { AsStored, Wide16, F32 };
// Whether matrix w is stored on the device as F32 (widened) under `how`.
bool uploads_as_f32(const WeightView& w, Upload how);
// Device bytes upload_weights gives dense tensor t under `how` (for placement plans): vectors,
// routers and gates widen to F32; MLA's kv_b becomes
// W_UK^T / W_UV (mla_absorbed_bytes).
uint64_t upload_bytes(const DenseTensor& t, const ModelConfig& c, Upload how);
uint64_t mla_absorbed_bytes(const ModelConfig& c);
Linear upload_linear(const WeightView& w, const WeightView& bias = {}, Upload how = Upload::AsStored);

// y[M, rows] = x[M, cols] . W^T (+ bias) on `stream`. x, y device pointers, 16-byte aligned.
void apply(const cuda::DeviceWeight& w, const float* x, int64_t M, float* y, cuda::DenseGemm& gemm,
           cudaStream_t stream);
void apply(const Linear& l, const float* x, int64_t M, float* y, cuda::DenseGemm& gemm, cudaStream_t stream);
// ys[i] = x . W_i^T (+ bias_i) for n layers reading the same x (Q, K, V): 16-bit or F32 weights of
// one format and K share one rounding of x (dense_gemm_same_x); otherwise each as apply().
void apply_same_x(const Linear* const* ls, float* const* ys, size_t n, const float* x, int64_t M, cuda::DenseGemm& gemm,
                  cudaStream_t stream);

struct GpuLayer {
  cuda::DeviceBuffer<float> attn_norm, ffn_norm, q_norm, k_norm;  // q_norm/k_norm empty when none
  Linear q, k, v, o;
  Linear gate, up, down;                    // dense FFN layers
  Linear router;                            // MoE layers, F32
  cuda::DeviceBuffer<float> router_corr;    // [E] the correction bias (the device router's choice), or empty
  Linear shared_gate_proj, shared_up, shared_down, shared_gate;  // shared expert (empty when none)
  cuda::DeviceBuffer<float> sinks;  // [n_heads] gpt-oss's attention sinks (empty when none)
  // MLA (DeepSeek): the q low-rank pair (or `q` alone), kv_a_proj_with_mqa and the two latent
  // norms; kv_b_proj split per head as the absorbed form reads it, fp32: W_UK^T [heads, R, nope]
  // and W_UV [heads, vd, R] (runtime/mla_absorb.h's layout).
  Linear q_a, q_b, kv_a;
  cuda::DeviceBuffer<float> q_a_norm, kv_a_norm, uk_t, uv;
  // A gated DeltaNet layer (Qwen3-Next / 3.5): projections, the conv [C * K], dt_bias and A_log
  // [nv], the gated norm's weight [dv] (used as is).
  Linear lin_qkv, lin_z, lin_b, lin_a, lin_out;
  cuda::DeviceBuffer<float> lin_conv, lin_dt_bias, lin_a_log, lin_norm;
  // gpt-oss: every routed expert's biases, [E, I], [E, I], [E, H] (empty when none).
  cuda::DeviceBuffer<float> expert_gate_bias, expert_up_bias, expert_down_bias;
  bool expert_biases() const { return expert_gate_bias.size() || expert_up_bias.size() || expert_down_bias.size(); }
};

struct GpuWeights {
  std::shared_ptr<const cuda::DeviceMatrix> embed;  // F32 / F16 / BF16 table [vocab, H]
  Linear lm_head;                                   // shares embed's matrix when they are tied
  cuda::DeviceBuffer<float> final_norm;
  std::vector<GpuLayer> layers;
  int64_t bytes = 0;  // device bytes of all of the above
};

// Uploads every dense weight of `m` (synchronous). wide16: F16/BF16 matrices as F32 (see
// Upload). Calls progress(done, total) per layer.
GpuWeights upload_weights(const Model& m, bool wide16, const std::function<void(int, int)>& progress = {});

}  // namespace moe::gpu
