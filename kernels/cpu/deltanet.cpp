#include "kernels/cpu/deltanet.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/ops.h"

namespace moe::cpu {
namespace {

void normalise(float* q, float* k, int64_t T, const DeltaNetShape& s) {
  const float scale = 1.0f / std::sqrt(float(s.k_dim));
  for (int64_t i = 0; i < T * s.n_k_heads; ++i)
    for (int which = 0; which < 2; ++which) {
      float* x = (which == 0 ? q : k) + i * s.k_dim;
      float ss = 0.0f;
      for (int d = 0; d < s.k_dim; ++d) ss += x[d] * x[d];
      const float inv = 1.0f / std::sqrt(ss + 1e-6f) * (which == 0 ? scale : 1.0f);
      for (int d = 0; d < s.k_dim; ++d) x[d] *= inv;
    }
}

// Built for AVX-512, AVX2 and plain x86-64, picked at load: the loops are plain and the
// compiler vectorises them over the contiguous k_dim / v_dim axes.
#define MOE_DELTANET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

MOE_DELTANET_CLONES void recurrent_heads(const float* q, const float* k, const float* v, const float* g,
                                         const float* beta, int64_t T, const DeltaNetShape& s, float* state, float* out,
                                         int64_t h0, int64_t h1) {
  const int dk = s.k_dim, dv = s.v_dim, group = s.n_v_heads / s.n_k_heads;
  std::vector<float> mem(static_cast<size_t>(dv));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = h0; h < h1; ++h) {
      float* S = state + int64_t(h) * dk * dv;
      const float* kt = k + (t * s.n_k_heads + h / group) * dk;
      const float* qt = q + (t * s.n_k_heads + h / group) * dk;
      const float* vt = v + (t * s.n_v_heads + h) * dv;
      const float decay = std::exp(g[t * s.n_v_heads + h]), b = beta[t * s.n_v_heads + h];
      for (int64_t i = 0; i < int64_t(dk) * dv; ++i) S[i] *= decay;
      std::fill(mem.begin(), mem.end(), 0.0f);
      for (int i = 0; i < dk; ++i)
        for (int j = 0; j < dv; ++j) mem[size_t(j)] += S[i * dv + j] * kt[i];
      for (int j = 0; j < dv; ++j) mem[size_t(j)] = (vt[j] - mem[size_t(j)]) * b;  // delta
      for (int i = 0; i < dk; ++i)
        for (int j = 0; j < dv; ++j) S[i * dv + j] += kt[i] * mem[size_t(j)];
      float* o = out + (t * s.n_v_heads + h) * dv;
      for (int j = 0; j < dv; ++j) o[j] = 0.0f;
      for (int i = 0; i < dk; ++i)
        for (int j = 0; j < dv; ++j) o[j] += S[i * dv + j] * qt[i];
    }
}

// GCC vector of 16 floats: one zmm under AVX-512, two ymm under AVX2, four xmm otherwise.
typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));  // unaligned access
// Macros, not functions: a v16 argument or result would change the ABI between the clones.
#define MOE_LOAD16(p) (*reinterpret_cast<const v16u*>(p))
#define MOE_STORE16(p, x) (*reinterpret_cast<v16u*>(p) = (x))
constexpr int kTile = 16;   // state columns (value dims) per work item
constexpr int kMaxKDim = 256;

// The recurrence on one 16-column tile of one head's state: columns are independent (each is
// one value dim's k_dim weights), so the tile (k_dim x 16 floats, 8 KB at k_dim 128) stays in
// registers and L1 for all T tokens, and each token costs two passes over it:
//   m = S^T k;  delta = beta (v - decay m);  S <- decay S + k delta^T;  o = S^T q.
// Four partial sums per pass keep the FMA chains short.
MOE_DELTANET_CLONES void recurrent_tiles(const float* q, const float* k, const float* v, const float* g,
                                         const float* beta, int64_t T, const DeltaNetShape& s, float* state,
                                         float* out, int64_t w0, int64_t w1) {
  const int dk = s.k_dim, dv = s.v_dim, group = s.n_v_heads / s.n_k_heads, tiles = dv / kTile;
  v16 S[kMaxKDim];
  for (int64_t w = w0; w < w1; ++w) {
    const int64_t h = w / tiles, c0 = (w % tiles) * kTile;
    float* Sh = state + h * dk * dv + c0;
    for (int i = 0; i < dk; ++i) S[i] = MOE_LOAD16(Sh + int64_t(i) * dv);
    for (int64_t t = 0; t < T; ++t) {
      const float* kt = k + (t * s.n_k_heads + h / group) * dk;
      const float* qt = q + (t * s.n_k_heads + h / group) * dk;
      const float decay = std::exp(g[t * s.n_v_heads + h]), b = beta[t * s.n_v_heads + h];
      v16 m0 = {}, m1 = {}, m2 = {}, m3 = {};
      for (int i = 0; i < dk; i += 4) {
        m0 += S[i] * kt[i];
        m1 += S[i + 1] * kt[i + 1];
        m2 += S[i + 2] * kt[i + 2];
        m3 += S[i + 3] * kt[i + 3];
      }
      const v16 delta = (MOE_LOAD16(v + (t * s.n_v_heads + h) * dv + c0) - ((m0 + m1) + (m2 + m3)) * decay) * b;
      v16 o0 = {}, o1 = {}, o2 = {}, o3 = {};
      for (int i = 0; i < dk; i += 4) {
        S[i] = S[i] * decay + delta * kt[i];
        S[i + 1] = S[i + 1] * decay + delta * kt[i + 1];
        S[i + 2] = S[i + 2] * decay + delta * kt[i + 2];
        S[i + 3] = S[i + 3] * decay + delta * kt[i + 3];
        o0 += S[i] * qt[i];
        o1 += S[i + 1] * qt[i + 1];
        o2 += S[i + 2] * qt[i + 2];
        o3 += S[i + 3] * qt[i + 3];
      }
      MOE_STORE16(out + (t * s.n_v_heads + h) * dv + c0, (o0 + o1) + (o2 + o3));
    }
    for (int i = 0; i < dk; ++i) MOE_STORE16(Sh + int64_t(i) * dv, S[i]);
  }
}

MOE_DELTANET_CLONES void chunked_heads(const float* q, const float* k, const float* v, const float* g,
                                       const float* beta, int64_t T, const DeltaNetShape& s, float* state, float* out,
                                       int chunk, int64_t h0, int64_t h1) {
  const int dk = s.k_dim, dv = s.v_dim, group = s.n_v_heads / s.n_k_heads, nk = s.n_k_heads, nv = s.n_v_heads;
  std::vector<float> cum, A, U, W, vnew;
  for (int64_t h = h0; h < h1; ++h) {
    float* S = state + int64_t(h) * dk * dv;
    const int64_t kh = h / group;
    auto K = [&](int64_t t) { return k + (t * nk + kh) * dk; };
    auto Q = [&](int64_t t) { return q + (t * nk + kh) * dk; };
    for (int64_t c0 = 0; c0 < T; c0 += chunk) {
      const int C = int(std::min<int64_t>(chunk, T - c0));
      cum.assign(size_t(C), 0.0f);
      float acc = 0.0f;
      for (int i = 0; i < C; ++i) cum[size_t(i)] = (acc += g[(c0 + i) * nv + h]);
      // (I + A) X = B with A[i][j] = beta_i (k_i . k_j) exp(cum_i - cum_j), j < i; B = beta v for
      // U (the new values) and beta k exp(cum) for W (what the old state predicts of them).
      A.assign(size_t(C) * C, 0.0f);
      for (int i = 0; i < C; ++i)
        for (int j = 0; j < i; ++j) {
          A[size_t(i) * C + j] =
              beta[(c0 + i) * nv + h] * dot(K(c0 + i), K(c0 + j), dk) * std::exp(cum[size_t(i)] - cum[size_t(j)]);
        }
      U.resize(size_t(C) * dv);
      W.resize(size_t(C) * dk);
      for (int i = 0; i < C; ++i) {
        const float b = beta[(c0 + i) * nv + h], ec = std::exp(cum[size_t(i)]);
        const float* vi = v + ((c0 + i) * nv + h) * dv;
        for (int j = 0; j < dv; ++j) U[size_t(i) * dv + j] = b * vi[j];
        for (int e = 0; e < dk; ++e) W[size_t(i) * dk + e] = b * K(c0 + i)[e] * ec;
        for (int j = 0; j < i; ++j) {
          const float a = A[size_t(i) * C + j];
          for (int x = 0; x < dv; ++x) U[size_t(i) * dv + x] -= a * U[size_t(j) * dv + x];
          for (int e = 0; e < dk; ++e) W[size_t(i) * dk + e] -= a * W[size_t(j) * dk + e];
        }
      }
      // v_new = U - W S: the correction only.
      vnew.resize(size_t(C) * dv);
      for (int i = 0; i < C; ++i) {
        float* vn = &vnew[size_t(i) * dv];
        std::copy_n(&U[size_t(i) * dv], dv, vn);
        for (int e = 0; e < dk; ++e) {  // rows of S: contiguous, so the inner loop vectorises
          const float w = W[size_t(i) * dk + e];
          for (int j = 0; j < dv; ++j) vn[j] -= w * S[e * dv + j];
        }
      }
      // o_i = (q_i exp(cum_i)) S + sum_{j <= i} (q_i . k_j) exp(cum_i - cum_j) v_new_j.
      for (int i = 0; i < C; ++i) {
        float* o = out + ((c0 + i) * nv + h) * dv;
        const float ec = std::exp(cum[size_t(i)]);
        std::fill(o, o + dv, 0.0f);
        for (int e = 0; e < dk; ++e) {
          const float qe = Q(c0 + i)[e] * ec;
          for (int j = 0; j < dv; ++j) o[j] += qe * S[e * dv + j];
        }
        for (int j = 0; j <= i; ++j) {
          const float w = dot(Q(c0 + i), K(c0 + j), dk) * std::exp(cum[size_t(i)] - cum[size_t(j)]);
          for (int x = 0; x < dv; ++x) o[x] += w * vnew[size_t(j) * dv + x];
        }
      }
      // S <- S exp(cum_last) + sum_j (k_j exp(cum_last - cum_j))^T v_new_j.
      const float last = cum[size_t(C - 1)], el = std::exp(last);
      for (int64_t i = 0; i < int64_t(dk) * dv; ++i) S[i] *= el;
      for (int j = 0; j < C; ++j) {
        const float w = std::exp(last - cum[size_t(j)]);
        for (int e = 0; e < dk; ++e) {
          const float ke = K(c0 + j)[e] * w;
          for (int x = 0; x < dv; ++x) S[e * dv + x] += ke * vnew[size_t(j) * dv + x];
        }
      }
    }
  }
}

}  // namespace

void gated_delta_recurrent(ThreadPool& pool, float* q, float* k, const float* v, const float* g, const float* beta,
                           int64_t T, const DeltaNetShape& s, float* state, float* out) {
  normalise(q, k, T, s);
  // One token (decode): by heads, whose state is read in order, which the prefetchers follow
  // better than the tiles' 512-byte strides (measured ~10% faster). More: by tiles (~4x the
  // chunked form on a prompt, bench_kernels DeltaNet).
  if (T > 1 && s.v_dim % kTile == 0 && s.k_dim % 4 == 0 && s.k_dim <= kMaxKDim) {  // every real model
    pool.parallel_for(int64_t(s.n_v_heads) * (s.v_dim / kTile), 1, [&](int64_t w0, int64_t w1) {
      recurrent_tiles(q, k, v, g, beta, T, s, state, out, w0, w1);
    });
    return;
  }
  pool.parallel_for(s.n_v_heads, 1, [&](int64_t h0, int64_t h1) { recurrent_heads(q, k, v, g, beta, T, s, state, out, h0, h1); });
}

void gated_delta_chunked(ThreadPool& pool, float* q, float* k, const float* v, const float* g, const float* beta,
                         int64_t T, const DeltaNetShape& s, float* state, float* out, int chunk) {
  normalise(q, k, T, s);
  pool.parallel_for(s.n_v_heads, 1,
                    [&](int64_t h0, int64_t h1) { chunked_heads(q, k, v, g, beta, T, s, state, out, chunk, h0, h1); });
}

}  // namespace moe::cpu
