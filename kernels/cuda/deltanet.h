// Gated DeltaNet linear attention (Qwen3-Next, Qwen3.5-MoE) on the GPU, the recurrent form, as the
// CPU engine runs it (runtime/engine_linear.cpp, kernels/cpu/deltanet.h). Same conventions as
// ops.h: device pointers, fp32, asynchronous on `stream`, arguments checked before launching.
//
// Written without a GPU at hand (2026-12-07): correct first. The delta rule runs token by token
// (one block per value head, one thread per state column), or in chunks (the reference
// implementations' form for prompts, one block per value head too); which one pays on a GPU is
// for a GPU session to measure.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::cuda {

struct DeltaNetDims {
  int n_k_heads = 0, n_v_heads = 0, k_dim = 0, v_dim = 0;
  __host__ __device__ int64_t conv_dim() const { return 2 * int64_t(n_k_heads) * k_dim + int64_t(n_v_heads) * v_dim; }
};

// In place, per token and value head: beta = sigmoid(b); g = -exp(a_log) * softplus(a + dt_bias)
// (torch's softplus threshold 20).
void deltanet_gates(float* b /*[T, nv]*/, float* a /*[T, nv]*/, const float* a_log /*[nv]*/,
                    const float* dt_bias /*[nv]*/, int64_t T, int nv, cudaStream_t stream);

// The causal depthwise conv over one sequence's run of n inputs: out[t, c] = silu(sum_j
// w[c, j] * x_{t - K + 1 + j}[c]), the window [K - 1, C] (oldest first) supplying the rows before
// the run. Then the window becomes the last K - 1 rows (through `scratch` [K - 1, C]).
void deltanet_conv(float* window, const float* in /*[n, C]*/, int64_t n, const float* w /*[C, K]*/, int C, int K,
                   float* out /*[n, C]*/, float* scratch, cudaStream_t stream);

// The gated delta rule over one sequence's run of n tokens. mixed [n, C]: q [nk, dk], k [nk, dk],
// v [nv, dv] per row (the conv's output); q and k are L2-normalised here (eps 1e-6), q scaled by
// 1 / sqrt(dk). g, beta [n, nv]; state [nv, dk, dv], updated; out [n, nv, dv]:
//   S <- S * exp(g);  S <- S + k (beta (v - S^T k))^T;  o = S^T q.
// dk, dv <= 1024.
void gated_delta_rule(const float* mixed, int64_t n, const DeltaNetDims& d, const float* g, const float* beta,
                      float* state, float* out, cudaStream_t stream);

// The same rule in chunks of `chunk` tokens (<= kDeltaMaxChunk), the WY form of
// kernels/cpu/deltanet.h's gated_delta_chunked step for step: per chunk, the in-chunk updates
// solved as one triangular system, the state read and written once. Equal to gated_delta_rule
// within rounding. `work`: >= deltanet_chunk_work(d, chunk) floats.
inline constexpr int kDeltaMaxChunk = 64;
int64_t deltanet_chunk_work(const DeltaNetDims& d, int chunk);
void gated_delta_rule_chunked(const float* mixed, int64_t n, const DeltaNetDims& d, const float* g, const float* beta,
                              float* state, float* out, int chunk, float* work, cudaStream_t stream);

// o[r, :] = rmsnorm(o[r, :]) * w * silu(z[r, :]) over rows of n (the gated RMSNorm).
void gated_rmsnorm(float* o /*[rows, n]*/, const float* z /*[rows, n]*/, const float* w /*[n]*/, float eps,
                   int64_t rows, int n, cudaStream_t stream);

// Qwen3-Next's gated attention: q_proj's output [T, heads, 2 * hd] (each head's query, then its
// gate) split into q and gate [T, heads, hd]; and x *= sigmoid(gate) on the attention's output.
void split_query_gate(const float* qg, int64_t T, int heads, int hd, float* q, float* gate, cudaStream_t stream);
void mul_sigmoid(float* x /*[n]*/, const float* gate /*[n]*/, int64_t n, cudaStream_t stream);

}  // namespace moe::cuda
