// fp32 CPU reference kernels for the exact engine. Weights may be F32, F16 or BF16;
// they are widened to fp32 on the fly and all arithmetic is fp32.
#pragma once
#include <cstdint>
#include <span>

#include "kernels/cpu/qmatmul.h"
#include "kernels/cpu/thread_pool.h"
#include "quant/weight_view.h"

namespace moe::cpu {

// y[M, N] = x[M, K] . W[N, K]^T (+ bias[N] when bias is non-empty). Threads split N.
// Quantized weights (Q4, Q4Z, F8E4M3, I8) go to the fused-dequant kernels of qmatmul.h
// (int8 activations for Q4/Q4Z/I8; semantics documented there).
void matmul(ThreadPool& pool, const float* x, int64_t M, const WeightView& w, float* y,
            const WeightView& bias = {});

// Several matmuls, each exactly as matmul computes it (bias: MatJob's fp32 pointer). The
// quantized ones share one parallel section (qmatmul_many); the others run one after another.
void matmul_many(ThreadPool& pool, std::span<const MatJob> jobs);

// SwiGLU FFN: out[n, H] = down(silu(gate(x)) * up(x)) for x [n, H], gate/up [inter, H], down
// [H, inter]: a dense FFN or one routed expert (the CPU engine's, and the GPU engine's misses).
void swiglu_ffn(ThreadPool& pool, const WeightView& gate, const WeightView& up, const WeightView& down, int64_t n,
                int64_t inter, const float* x, float* out);

// gpt-oss's SwiGLU variant: gate clamped above at limit, up to [-limit, limit], then
// (up + 1) * gate * sigmoid(alpha * gate).
struct ClampedSwiglu {
  float limit, alpha;
};

// One FFN of swiglu_ffn_many.
struct FfnJob {
  WeightView gate, up, down;
  int64_t n;       // rows of x
  const float* x;  // [n, H]
  float* out;      // [n, H]
  // Optional (gpt-oss's experts): f32 biases of gate and up [inter] and of down [H], added to
  // each projection's output, and the clamped activation instead of silu(gate) * up.
  const float* gate_bias = nullptr;
  const float* up_bias = nullptr;
  const float* down_bias = nullptr;
  const ClampedSwiglu* clamp = nullptr;
};
// Several SwiGLU FFNs of the same intermediate size (a layer's routed experts) in two parallel
// sections, every gate and up projection, then every down projection: each out equals
// swiglu_ffn's for that job alone.
void swiglu_ffn_many(ThreadPool& pool, std::span<const FfnJob> jobs, int64_t inter);

// Dot product of n floats (vectorized, run-time dispatched).
float dot(const float* a, const float* b, int64_t n);
// out[r] = dot(a[r], b, n) for r < 4, bit for bit, computed together (dense matmuls of several tokens).
void dot4(const float* const a[4], const float* b, int64_t n, float out[4]);

// out[n] = x[n] / sqrt(mean(x^2) + eps) * w[n]   (HF RMSNorm; in place allowed)
void rmsnorm(const float* x, const WeightView& w, float eps, int64_t n, float* out);

// Rotates pairs (i, i + d/2) of each head (HF rotate_half convention).
// v: [n_heads, head_dim]; cos, sin: [head_dim / 2].
void rope(float* v, int n_heads, int head_dim, const float* cos, const float* sin);
// The same on the first `rot_dims` values of each head (partial rotary; heads `head_stride`
// apart), pairing (i, i + rot_dims/2), or adjacent values (2i, 2i+1) when `interleaved`
// (DeepSeek). cos/sin: [rot_dims / 2].
void rope_dims(float* v, int n_heads, int head_stride, int rot_dims, bool interleaved, const float* cos,
               const float* sin);

// In-place softmax over n values.
void softmax(float* x, int64_t n);

// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, int64_t n, float* out);
// out = ClampedSwiglu of gate and up, elementwise.
void clamped_swiglu(const float* gate, const float* up, int64_t n, const ClampedSwiglu& c, float* out);

// Indices of the k largest values, largest first; ties go to the lower index (as torch.topk).
void topk(const float* x, int n, int k, int* idx);

// A MoE router's choice for T tokens: softmax over each row of probs [T, E] (in place: logits
// in, probabilities out), the top k experts (topk's order and ties), and their weights,
// renormalised to sum 1 when `renorm` (norm_topk_prob). ids, weights: [T, k].
void route(float* probs, int64_t T, int E, int k, bool renorm, int32_t* ids, float* weights);

// Widens a weight row (or any contiguous run) to fp32.
void to_f32(const WeightView& w, int64_t offset, int64_t n, float* out);

}  // namespace moe::cpu
