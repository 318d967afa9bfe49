// The small per-token ops of a transformer layer on the GPU, each matching its fp32 CPU
// reference in kernels/cpu/ops.h (same formulas, same order of the final multiplies; sums are
// reduced in parallel, so results differ from the CPU by rounding only).
//
// All pointers are device pointers unless named host_*; activations are fp32. Every function
// is asynchronous on `stream`, checks its arguments before launching anything (throwing
// std::invalid_argument) and throws std::runtime_error (kernels/cuda/check.h) when CUDA
// reports an error. Zero rows / elements launch nothing.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_weight.h"
#include "quant/weight_view.h"

namespace moe::cuda {

// ---- RMSNorm (norm.cu) -------------------------------------------------------------------
// out[r, i] = x[r, i] / sqrt(mean_i(x[r, :]^2) + eps) * w[i]   (HF RMSNorm, as cpu::rmsnorm)
// Hidden norm: rows = T, n = hidden. Per-head QK-norm: rows = T * heads, n = head_dim (the
// weight is shared by all heads). In place allowed (out == x).
void rmsnorm(const float* x /*[rows, n]*/, const float* w /*[n]*/, float eps, int64_t rows, int64_t n,
             float* out /*[rows, n]*/, cudaStream_t stream);

// Residual add fused with the next norm: x += y, then out = rmsnorm(x). One pass over x instead
// of two launches (add, then norm re-reading x): x is read once, written once.
void add_rmsnorm(float* x /*[rows, n]*/, const float* y /*[rows, n]*/, const float* w /*[n]*/, float eps,
                 int64_t rows, int64_t n, float* out /*[rows, n]*/, cudaStream_t stream);

// A host F32, F16 or BF16 weight (a norm vector, any [rows, cols]) widened to fp32 once and
// copied to the device: rows * cols floats. Synchronous. Quantized formats are refused.
DeviceBuffer<float> upload_f32(const WeightView& host_w);

// ---- RoPE (rope.cu) ----------------------------------------------------------------------
// Which dims of a head rotate, and how they pair (cpu::rope_dims): the leading rot_dims of each
// head_dim-long head (partial rotary: GLM-4.5, Qwen3-Next; the rest pass through), paired
// (i, i + rot_dims / 2) as HF's rotate_half, or (2i, 2i + 1) when interleaved (DeepSeek).
struct RopeLayout {
  int head_dim = 0;
  int rot_dims = 0;  // even, 2..head_dim
  bool interleaved = false;
  static RopeLayout full(int head_dim) { return {head_dim, head_dim, false}; }
};

// In place on v [T, heads, head_dim]: pair i of each head turns by angle = float(pos[t]) *
// inv_freq[i], cos and sin scaled by attention_factor (YaRN's; 1 otherwise), as
// runtime/engine_attention.cpp computes them.
void rope(float* v /*[T, heads, head_dim]*/, const int32_t* pos /*[T]*/, const float* inv_freq /*[rot_dims / 2]*/,
          int64_t T, int heads, const RopeLayout& layout, float attention_factor, cudaStream_t stream);

// Per-head QK-norm then RoPE of q and k in one launch (qk_norm_rope.cu): each head row of q
// [T, n_heads, head_dim] and k [T, n_kv_heads, head_dim] is rmsnorm'd with q_norm / k_norm
// [head_dim], then rotated as rope() does. Bit-identical to rmsnorm() on the T * heads rows
// followed by rope(), for q and for k.
void qk_norm_rope(float* q, float* k, const float* q_norm, const float* k_norm, float eps, const int32_t* pos,
                  const float* inv_freq, int64_t T, int n_heads, int n_kv_heads, const RopeLayout& layout,
                  float attention_factor, cudaStream_t stream);

// ---- Element-wise (elementwise.cu) -------------------------------------------------------
// out[i] = silu(gate[i]) * up[i] = gate / (1 + exp(-gate)) * up. out may alias gate or up.
void silu_mul(const float* gate /*[n]*/, const float* up /*[n]*/, int64_t n, float* out /*[n]*/, cudaStream_t stream);
// gpt-oss's experts: out[i] = clamped_swiglu_one(gate[i], up[i], limit, alpha) (swiglu.h, as
// cpu::clamped_swiglu). out may alias gate or up.
void clamped_swiglu(const float* gate, const float* up, int64_t n, float limit, float alpha, float* out,
                    cudaStream_t stream);
// x[i] += y[i] (the residual add).
void add_inplace(float* x /*[n]*/, const float* y /*[n]*/, int64_t n, cudaStream_t stream);

// ---- Router (router.cu) ------------------------------------------------------------------
// Per token: p = softmax(logits[t, :]), then the k largest p, largest first, ties to the lower
// expert index (cpu::topk); weights are p, or p / sum of the k chosen p when norm_topk_prob
// (runtime/engine_ffn.cpp). 1 <= k <= min(E, kRouterMaxK), E <= kRouterMaxExperts.
// Non-finite logits give NaN weights but ids stay in [0, E).
inline constexpr int kRouterMaxK = 32;          // one lane of a warp per chosen expert
inline constexpr int kRouterMaxExperts = 2048;  // the warp's E probabilities live in shared memory
void router_topk(const float* logits /*[T, E]*/, int64_t T, int E, int k, bool norm_topk_prob,
                 int32_t* ids /*[T, k]*/, float* weights /*[T, k]*/, cudaStream_t stream);
// Every rule cpu::route_ex knows (cpu::RouterSpec, here with a device bias), one warp per token:
// sigmoid or softmax scores; a correction bias that steers the choice only; group-limited choice
// (a group's best, or its two best summed; n_groups <= 32, a lane each); top-k of the logits then
// softmax over the k (gpt-oss); renormalisation (+1e-20 for sigmoid); routed scaling last. Ties
// go to the lower index; a NaN choice ranks below every number. With the plain rule (softmax,
// renorm or not, nothing else) it is router_topk, bit for bit.
struct RouterRule {
  bool sigmoid = false;
  bool softmax_after_topk = false;
  const float* bias = nullptr;  // device [E], or null
  int n_groups = 1, topk_groups = 1;
  bool group_top2_sum = false;
  bool renorm = false;
  float scale = 1.0f;
};
inline constexpr int kRouterMaxGroups = 32;
// Empty when router_route takes E experts, top-k and `rule`; else what it lacks (router_route
// throws it; the GPU engine routes such a model on the host instead).
std::string router_unsupported(int E, int k, const RouterRule& rule);
void router_route(const float* logits /*[T, E]*/, int64_t T, int E, int k, const RouterRule& rule,
                  int32_t* ids /*[T, k]*/, float* weights /*[T, k]*/, cudaStream_t stream);

// ---- Embedding gather (embed.cu) ---------------------------------------------------------
// out[t, :] = fp32(table[host_ids[t], :]); table is F32, BF16 or F16, [V = rows, H = cols].
// The ids are checked on the host (each in [0, V), else std::invalid_argument, before any
// copy or launch), then copied to ids_scratch and gathered there. host_ids may be freed on
// return (a copy from pageable memory is staged before cudaMemcpyAsync returns).
void embed(const DeviceWeight& table, const int32_t* host_ids /*[T]*/, int64_t T, int32_t* ids_scratch /*[T]*/,
           float* out /*[T, H]*/, cudaStream_t stream);
// The same gather with ids already on the device (a captured decode step): an id outside
// [0, V) gives a row of NaN instead of an error.
void embed_device(const DeviceWeight& table, const int32_t* ids /*[T]*/, int64_t T, float* out /*[T, H]*/,
                  cudaStream_t stream);

}  // namespace moe::cuda
