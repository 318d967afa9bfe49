// Gated DeltaNet's kernels (deltanet.h), each the CPU engine's loop (runtime/engine_linear.cpp,
// kernels/cpu/deltanet.cpp) with one thread per element, column or row.
#include <algorithm>
#include <climits>
#include <cmath>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/deltanet.h"
#include "kernels/cuda/ops_common.cuh"

namespace moe::cuda {
namespace {

using ops_detail::grid_stride_blocks;
using ops_detail::kThreads;
using ops_detail::require;

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

__global__ void gates_kernel(float* b, float* a, const float* __restrict__ a_log, const float* __restrict__ dt,
                             int64_t total, int nv) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int h = int(i % nv);
    b[i] = 1.0f / (1.0f + expf(-b[i]));
    const float x = a[i] + dt[h];
    const float sp = x > 20.0f ? x : log1pf(expf(x));
    a[i] = -expf(a_log[h]) * sp;
  }
}

// Row r of the conv's input: the window's rows first, then the run's.
__device__ __forceinline__ const float* conv_row(const float* window, const float* in, int64_t r, int C, int K) {
  return r < K - 1 ? window + r * C : in + (r - (K - 1)) * C;
}

__global__ void conv_kernel(const float* __restrict__ window, const float* __restrict__ in, int64_t n,
                            const float* __restrict__ w, int C, int K, float* __restrict__ out) {
  const int64_t total = n * C;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / C;
    const int c = int(i % C);
    // cpu order: the newest input first, then the older ones oldest first.
    float o = w[int64_t(c) * K + K - 1] * conv_row(window, in, t + K - 1, C, K)[c];
    for (int j = 0; j < K - 1; ++j) o += w[int64_t(c) * K + j] * conv_row(window, in, t + j, C, K)[c];
    out[i] = silu(o);
  }
}

__global__ void next_window_kernel(const float* __restrict__ window, const float* __restrict__ in, int64_t n, int C,
                                   int K, float* __restrict__ next) {
  const int64_t total = int64_t(K - 1) * C;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i / C;
    next[i] = conv_row(window, in, n + j, C, K)[i % C];
  }
}

// A token's query and key of key head kh (from its conv row) into q and k [dk], as they are, and
// the factors that L2-normalise them (eps 1e-6; the query's also scaled by 1 / sqrt(dk)), as
// kernels/cpu/deltanet.cpp's normalise. Called by the whole block; ends with a barrier, so the
// copies are visible to every thread.
__device__ __forceinline__ float2 load_qk(const float* row, const DeltaNetDims& d, int kh, float* q, float* k) {
  const int dk = d.k_dim;
  const int64_t kd = int64_t(d.n_k_heads) * dk;
  float sqq = 0.0f, skk = 0.0f;
  for (int e = threadIdx.x; e < dk; e += blockDim.x) {
    const float qe = row[int64_t(kh) * dk + e], ke = row[kd + int64_t(kh) * dk + e];
    q[e] = qe, k[e] = ke;
    sqq = fmaf(qe, qe, sqq);
    skk = fmaf(ke, ke, skk);
  }
  sqq = ops_detail::block_sum(sqq);
  skk = ops_detail::block_sum(skk);
  return make_float2(1.0f / sqrtf(sqq + 1e-6f) * (1.0f / sqrtf(float(dk))), 1.0f / sqrtf(skk + 1e-6f));
}

// One block per value head, blockDim >= max(dk, dv) (a multiple of 32). Thread j < dv keeps
// column j of the head's state in global memory (rows dv apart: coalesced over j); the token's
// normalised q and k sit in shared memory.
__global__ void delta_rule_kernel(const float* __restrict__ mixed, int64_t n, DeltaNetDims d,
                                  const float* __restrict__ g, const float* __restrict__ beta, float* state,
                                  float* __restrict__ out) {
  extern __shared__ float sh[];  // q [dk], k [dk]
  float* sq = sh;
  float* sk = sh + d.k_dim;
  const int h = blockIdx.x, j = threadIdx.x;
  const int dk = d.k_dim, dv = d.v_dim, group = d.n_v_heads / d.n_k_heads, kh = h / group;
  const int64_t C = d.conv_dim(), kd = int64_t(d.n_k_heads) * dk;
  float* S = state + int64_t(h) * dk * dv;
  for (int64_t t = 0; t < n; ++t) {
    const float* row = mixed + t * C;
    const float2 inv = load_qk(row, d, kh, sq, sk);
    const float qinv = inv.x, kinv = inv.y;
    if (j < dv) {
      const float decay = expf(g[t * d.n_v_heads + h]), b = beta[t * d.n_v_heads + h];
      float mem = 0.0f;
      for (int i = 0; i < dk; ++i) mem += (S[int64_t(i) * dv + j] * decay) * (sk[i] * kinv);
      const float delta = (row[2 * kd + int64_t(h) * dv + j] - mem) * b;
      float o = 0.0f;
      for (int i = 0; i < dk; ++i) {
        const float s = S[int64_t(i) * dv + j] * decay + (sk[i] * kinv) * delta;
        S[int64_t(i) * dv + j] = s;
        o += s * (sq[i] * qinv);
      }
      out[(t * d.n_v_heads + h) * dv + j] = o;
    }
    __syncthreads();  // the next token rewrites sq / sk
  }
}

// One block per value head; thread x < dv owns state column x, thread e < dk row e of the W
// rows. Per chunk (C tokens): the normalised q and k, the cumulative log decays, A and the q.k
// weights, U and W by forward substitution, v_new = U - W S, the outputs, then the state. Scratch
// per head in `work` (deltanet_chunk_work): Qn, Kn, W [C, dk], U [C, dv], A, QK [C, C].
__global__ void delta_chunk_kernel(const float* __restrict__ mixed, int64_t n, DeltaNetDims d,
                                   const float* __restrict__ g, const float* __restrict__ beta, float* state,
                                   float* __restrict__ out, int chunk, float* work) {
  __shared__ float cum[kDeltaMaxChunk], bet[kDeltaMaxChunk];
  const int h = blockIdx.x, tid = threadIdx.x, nt = blockDim.x;
  const int dk = d.k_dim, dv = d.v_dim, nv = d.n_v_heads, kh = h / (nv / d.n_k_heads);
  const int64_t C64 = d.conv_dim(), kd = int64_t(d.n_k_heads) * dk;
  const int CM = chunk;
  float* base = work + int64_t(h) * (3 * int64_t(CM) * dk + int64_t(CM) * dv + 2 * int64_t(CM) * CM);
  float *Qn = base, *Kn = Qn + CM * dk, *W = Kn + CM * dk, *U = W + CM * dk, *A = U + CM * dv, *QK = A + CM * CM;
  float* S = state + int64_t(h) * dk * dv;
  for (int64_t c0 = 0; c0 < n; c0 += CM) {
    const int C = int(n - c0 < CM ? n - c0 : CM);
    // Normalised q and k of each token (as the recurrent kernel), the decays and betas.
    for (int i = 0; i < C; ++i) {
      const float2 inv = load_qk(mixed + (c0 + i) * C64, d, kh, Qn + i * dk, Kn + i * dk);
      for (int e = tid; e < dk; e += nt) Qn[i * dk + e] *= inv.x, Kn[i * dk + e] *= inv.y;
    }
    if (tid == 0) {  // cumulative log decay, summed in token order as on the CPU
      float acc = 0.0f;
      for (int i = 0; i < C; ++i) cum[i] = (acc += g[(c0 + i) * nv + h]), bet[i] = beta[(c0 + i) * nv + h];
    }
    __syncthreads();
    // A[i][j] = beta_i (k_i . k_j) e^(cum_i - cum_j), j < i; QK[i][j] = (q_i . k_j) e^(cum_i - cum_j), j <= i.
    for (int p = tid; p < C * C; p += nt) {
      const int i = p / C, j = p % C;
      if (j > i) continue;
      float kk = 0.0f, qk = 0.0f;
      for (int e = 0; e < dk; ++e) {
        kk += Kn[i * dk + e] * Kn[j * dk + e];
        qk += Qn[i * dk + e] * Kn[j * dk + e];
      }
      const float decay = expf(cum[i] - cum[j]);
      if (j < i) A[i * C + j] = bet[i] * kk * decay;
      QK[i * C + j] = qk * decay;
    }
    __syncthreads();
    // (I + A) [U | W] = [beta v | beta k e^cum], row by row.
    for (int i = 0; i < C; ++i) {
      const float b = bet[i], ec = expf(cum[i]);
      const float* vi = mixed + (c0 + i) * C64 + 2 * kd + int64_t(h) * dv;
      for (int x = tid; x < dv; x += nt) {
        float u = b * vi[x];
        for (int j = 0; j < i; ++j) u -= A[i * C + j] * U[j * dv + x];
        U[i * dv + x] = u;
      }
      for (int e = tid; e < dk; e += nt) {
        float w = b * Kn[i * dk + e] * ec;
        for (int j = 0; j < i; ++j) w -= A[i * C + j] * W[j * dk + e];
        W[i * dk + e] = w;
      }
      __syncthreads();
    }
    // v_new = U - W S (in U); outputs; the state. Thread x owns column x of S and of U.
    for (int x = tid; x < dv; x += nt) {
      for (int i = 0; i < C; ++i) {
        float vn = U[i * dv + x];
        for (int e = 0; e < dk; ++e) vn -= W[i * dk + e] * S[int64_t(e) * dv + x];
        U[i * dv + x] = vn;
      }
      for (int i = 0; i < C; ++i) {
        const float ec = expf(cum[i]);
        float o = 0.0f;
        for (int e = 0; e < dk; ++e) o += (Qn[i * dk + e] * ec) * S[int64_t(e) * dv + x];
        for (int j = 0; j <= i; ++j) o += QK[i * C + j] * U[j * dv + x];
        out[((c0 + i) * nv + h) * dv + x] = o;
      }
      const float last = cum[C - 1], el = expf(last);
      for (int e = 0; e < dk; ++e) S[int64_t(e) * dv + x] *= el;
      for (int j = 0; j < C; ++j) {
        const float w = expf(last - cum[j]);
        for (int e = 0; e < dk; ++e) S[int64_t(e) * dv + x] += (Kn[j * dk + e] * w) * U[j * dv + x];
      }
    }
    __syncthreads();  // the next chunk rewrites the scratch and cum
  }
}

__global__ void gated_rmsnorm_kernel(float* o, const float* __restrict__ z, const float* __restrict__ w, float eps,
                                     int n) {
  float* x = o + int64_t(blockIdx.x) * n;
  const float* zr = z + int64_t(blockIdx.x) * n;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) ss = fmaf(x[i], x[i], ss);
  ss = ops_detail::block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(n) + eps);
  for (int i = threadIdx.x; i < n; i += blockDim.x) x[i] = x[i] * inv * w[i] * silu(zr[i]);
}

__global__ void split_kernel(const float* __restrict__ qg, int64_t total, int hd, float* __restrict__ q,
                             float* __restrict__ gate) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t th = i / hd, e = i % hd;  // (token, head), element
    q[i] = qg[th * 2 * hd + e];
    gate[i] = qg[th * 2 * hd + hd + e];
  }
}

__global__ void mul_sigmoid_kernel(float* x, const float* __restrict__ gate, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] *= 1.0f / (1.0f + expf(-gate[i]));
}

}  // namespace

void deltanet_gates(float* b, float* a, const float* a_log, const float* dt_bias, int64_t T, int nv,
                    cudaStream_t stream) {
  require(T >= 0 && nv > 0, "deltanet_gates", "T >= 0 and nv > 0 needed");
  if (T == 0) return;
  require(b && a && a_log && dt_bias, "deltanet_gates", "null pointer");
  gates_kernel<<<grid_stride_blocks(T * nv), kThreads, 0, stream>>>(b, a, a_log, dt_bias, T * nv, nv);
  MOE_CUDA_CHECK_LAUNCH();
}

void deltanet_conv(float* window, const float* in, int64_t n, const float* w, int C, int K, float* out, float* scratch,
                   cudaStream_t stream) {
  require(n >= 0 && C > 0 && K >= 1, "deltanet_conv", "n >= 0, C > 0 and K >= 1 needed");
  if (n == 0) return;
  require(in && w && out && (K == 1 || (window && scratch)), "deltanet_conv", "null pointer");
  conv_kernel<<<grid_stride_blocks(n * C), kThreads, 0, stream>>>(window, in, n, w, C, K, out);
  MOE_CUDA_CHECK_LAUNCH();
  if (K == 1) return;
  const int64_t wn = int64_t(K - 1) * C;
  next_window_kernel<<<grid_stride_blocks(wn), kThreads, 0, stream>>>(window, in, n, C, K, scratch);
  MOE_CUDA_CHECK_LAUNCH();
  MOE_CUDA_CHECK(cudaMemcpyAsync(window, scratch, size_t(wn) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
}

void gated_delta_rule(const float* mixed, int64_t n, const DeltaNetDims& d, const float* g, const float* beta,
                      float* state, float* out, cudaStream_t stream) {
  require(n >= 0, "gated_delta_rule", "negative n");
  require(d.n_k_heads > 0 && d.n_v_heads > 0 && d.n_v_heads % d.n_k_heads == 0, "gated_delta_rule",
          "n_v_heads must be a positive multiple of n_k_heads");
  require(d.k_dim > 0 && d.v_dim > 0 && d.k_dim <= 1024 && d.v_dim <= 1024, "gated_delta_rule",
          "k_dim and v_dim must be in 1..1024");
  require(d.n_v_heads <= INT_MAX, "gated_delta_rule", "too many heads");
  if (n == 0) return;
  require(mixed && g && beta && state && out, "gated_delta_rule", "null pointer");
  const int threads = (std::max(d.k_dim, d.v_dim) + 31) / 32 * 32;
  const size_t smem = 2 * size_t(d.k_dim) * sizeof(float);
  delta_rule_kernel<<<unsigned(d.n_v_heads), threads, smem, stream>>>(mixed, n, d, g, beta, state, out);
  MOE_CUDA_CHECK_LAUNCH();
}

int64_t deltanet_chunk_work(const DeltaNetDims& d, int chunk) {
  return int64_t(d.n_v_heads) * (3 * int64_t(chunk) * d.k_dim + int64_t(chunk) * d.v_dim + 2 * int64_t(chunk) * chunk);
}

void gated_delta_rule_chunked(const float* mixed, int64_t n, const DeltaNetDims& d, const float* g, const float* beta,
                              float* state, float* out, int chunk, float* work, cudaStream_t stream) {
  require(n >= 0, "gated_delta_rule_chunked", "negative n");
  require(chunk >= 1 && chunk <= kDeltaMaxChunk, "gated_delta_rule_chunked",
          "chunk must be in 1.." + std::to_string(kDeltaMaxChunk) + ", got " + std::to_string(chunk));
  require(d.n_k_heads > 0 && d.n_v_heads > 0 && d.n_v_heads % d.n_k_heads == 0, "gated_delta_rule_chunked",
          "n_v_heads must be a positive multiple of n_k_heads");
  require(d.k_dim > 0 && d.v_dim > 0 && d.k_dim <= 1024 && d.v_dim <= 1024, "gated_delta_rule_chunked",
          "k_dim and v_dim must be in 1..1024");
  if (n == 0) return;
  require(mixed && g && beta && state && out && work, "gated_delta_rule_chunked", "null pointer");
  const int threads = (std::max(d.k_dim, d.v_dim) + 31) / 32 * 32;
  delta_chunk_kernel<<<unsigned(d.n_v_heads), threads, 0, stream>>>(mixed, n, d, g, beta, state, out, chunk, work);
  MOE_CUDA_CHECK_LAUNCH();
}

void gated_rmsnorm(float* o, const float* z, const float* w, float eps, int64_t rows, int n, cudaStream_t stream) {
  require(rows >= 0 && n > 0, "gated_rmsnorm", "rows >= 0 and n > 0 needed");
  require(rows <= INT_MAX, "gated_rmsnorm", "rows must fit in 31 bits");
  if (rows == 0) return;
  require(o && z && w, "gated_rmsnorm", "null pointer");
  gated_rmsnorm_kernel<<<unsigned(rows), ops_detail::norm_threads(n), 0, stream>>>(o, z, w, eps, n);
  MOE_CUDA_CHECK_LAUNCH();
}

void split_query_gate(const float* qg, int64_t T, int heads, int hd, float* q, float* gate, cudaStream_t stream) {
  require(T >= 0 && heads > 0 && hd > 0, "split_query_gate", "T >= 0, heads > 0 and hd > 0 needed");
  const int64_t total = T * heads * int64_t(hd);
  if (total == 0) return;
  require(qg && q && gate, "split_query_gate", "null pointer");
  split_kernel<<<grid_stride_blocks(total), kThreads, 0, stream>>>(qg, total, hd, q, gate);
  MOE_CUDA_CHECK_LAUNCH();
}

void mul_sigmoid(float* x, const float* gate, int64_t n, cudaStream_t stream) {
  require(n >= 0, "mul_sigmoid", "negative n");
  if (n == 0) return;
  require(x && gate, "mul_sigmoid", "null pointer");
  mul_sigmoid_kernel<<<grid_stride_blocks(n), kThreads, 0, stream>>>(x, gate, n);
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda
