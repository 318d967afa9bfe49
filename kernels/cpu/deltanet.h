// The gated delta rule of Gated DeltaNet linear attention (Qwen3-Next, Qwen3.5-MoE), for one
// sequence. Per value head h (key head h / (n_v_heads / n_k_heads)) with state S [k_dim, v_dim]:
//   q, k L2-normalised (eps 1e-6), q scaled by 1/sqrt(k_dim);
//   S <- S * exp(g_t);  S <- S + k_t (beta_t (v_t - S^T k_t))^T;  o_t = S^T q_t.
// Two forms with the same result up to rounding (test_deltanet: within 1e-5):
//   - token by token. Several tokens run by 16-column tiles of each head's state, each tile
//     held in L1 for the whole run (the columns are independent);
//   - in chunks whose in-chunk updates are solved as one triangular system (the WY/UT form of
//     the reference implementations), which touches the state once per chunk instead of per
//     token.
// The engine runs the first for prompts as well. At k_dim = v_dim = 128 and 64-token chunks,
// chunking saves no arithmetic (~65K FMA per token and head either way); what it buys is
// parallel matrix products, which pay on a GPU. On the CPU the tiled recurrence ran a 512-token
// Qwen3.5 prompt 4x faster (bench_kernels DeltaNet, 2 threads: 8.5 ms against 33.6 ms a layer).
#pragma once
#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace moe::cpu {

struct DeltaNetShape {
  int n_k_heads = 0, n_v_heads = 0;
  int k_dim = 0, v_dim = 0;
  int64_t state_floats() const { return int64_t(n_v_heads) * k_dim * v_dim; }
};

// q, k: [T, n_k_heads, k_dim] (normalised here, in place); v: [T, n_v_heads, v_dim];
// g (log decay, <= 0), beta: [T, n_v_heads]; state: [n_v_heads, k_dim, v_dim], updated;
// out: [T, n_v_heads, v_dim]. Value heads are independent: they are split over the pool.
void gated_delta_recurrent(ThreadPool& pool, float* q, float* k, const float* v, const float* g, const float* beta,
                           int64_t T, const DeltaNetShape& s, float* state, float* out);
void gated_delta_chunked(ThreadPool& pool, float* q, float* k, const float* v, const float* g, const float* beta,
                         int64_t T, const DeltaNetShape& s, float* state, float* out, int chunk = 64);

}  // namespace moe::cpu
