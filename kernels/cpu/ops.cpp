#include "kernels/cpu/ops.h"

#include "kernels/cpu/qmatmul.h"
#include "quant/quantize.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace moe::cpu {

// Several independent partial sums let the compiler vectorize without -ffast-math;
// target_clones picks the widest ISA the CPU has at load time.
namespace {
constexpr int kDotLanes = 16;

// The tail and the final reduction of a dot, compiled once per ISA and shared by dot and dot4 so
// that both round exactly alike (inlined, the compiler could vectorize dot4's four tails and
// contract them differently).
__attribute__((target_clones("avx512f", "avx2", "default"), noinline)) float dot_tail(const float* acc, const float* a,
                                                                                     const float* b, int64_t rem) {
  float s = 0.0f;
  for (int64_t i = 0; i < rem; ++i) s += a[i] * b[i];
  for (int j = 0; j < kDotLanes; ++j) s += acc[j];
  return s;
}
}  // namespace

__attribute__((target_clones("avx512f", "avx2", "default"))) float dot(const float* a, const float* b, int64_t n) {
  constexpr int L = kDotLanes;
  float acc[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) acc[j] += a[i + j] * b[i + j];
  return dot_tail(acc, a + i, b + i, n - i);
}

// Four dots sharing b, each summed in exactly dot()'s order (so every result is bit-identical to
// dot(a[r], b, n)): four independent accumulator chains instead of one latency-bound chain, and
// b loaded once for the four.
__attribute__((target_clones("avx512f", "avx2", "default"))) void dot4(const float* const a[4], const float* b, int64_t n,
                                                                       float out[4]) {
  constexpr int L = kDotLanes;
  float acc0[L] = {}, acc1[L] = {}, acc2[L] = {}, acc3[L] = {};
  const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) {
      const float bj = b[i + j];
      acc0[j] += a0[i + j] * bj;
      acc1[j] += a1[i + j] * bj;
      acc2[j] += a2[i + j] * bj;
      acc3[j] += a3[i + j] * bj;
    }
  out[0] = dot_tail(acc0, a0 + i, b + i, n - i);
  out[1] = dot_tail(acc1, a1 + i, b + i, n - i);
  out[2] = dot_tail(acc2, a2 + i, b + i, n - i);
  out[3] = dot_tail(acc3, a3 + i, b + i, n - i);
}

namespace {

// F16C widens 8 halves per instruction; the scalar decode is a dozen branches per value.
__attribute__((target("f16c,avx"))) void f16_to_f32_f16c(const uint16_t* p, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i))));
  for (; i < n; ++i) out[i] = f16_to_f32(p[i]);
}

}  // namespace

void to_f32(const WeightView& w, int64_t offset, int64_t n, float* out) {
  switch (w.dtype) {
    case DType::F32: std::copy_n(static_cast<const float*>(w.data) + offset, n, out); break;
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + offset;
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i]);
      break;
    }
    case DType::F16: {
      static const bool f16c = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + offset;
      if (f16c) {
        f16_to_f32_f16c(p, n, out);
        break;
      }
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(p[i]);
      break;
    }
    default: {
      // Quantized: decode whole rows (their scales are per row or group) and copy the span.
      std::vector<float> row(size_t(w.cols));
      for (int64_t i = offset; i < offset + n;) {
        const int64_t r = i / w.cols, c = i % w.cols, take = std::min(n - (i - offset), w.cols - c);
        dequantize_row(w, r, row.data());
        std::copy_n(row.data() + c, take, out + (i - offset));
        i += take;
      }
    }
  }
}

void matmul_many(ThreadPool& pool, std::span<const MatJob> jobs) {
  std::vector<MatJob> quantized;
  for (const MatJob& j : jobs) {
    if (is_quantized(j.w.dtype)) {
      quantized.push_back(j);
      continue;
    }
    const WeightView bias = j.bias ? WeightView{DType::F32, j.bias, j.w.rows, 1} : WeightView{};
    matmul(pool, j.x, j.M, j.w, j.y, bias);
  }
  if (!quantized.empty()) qmatmul_many(pool, quantized, active_isa());
}

void swiglu_ffn(ThreadPool& pool, const WeightView& gate, const WeightView& up, const WeightView& down, int64_t n,
                int64_t inter, const float* x, float* out) {
  const FfnJob job{gate, up, down, n, x, out};
  swiglu_ffn_many(pool, {&job, 1}, inter);
}

void swiglu_ffn_many(ThreadPool& pool, std::span<const FfnJob> jobs, int64_t inter) {
  // [n, inter] each, left uninitialised (every element is written): zeroing a prompt's buffers
  // cost a serial memset of ~100 MB per layer.
  std::vector<std::unique_ptr<float[]>> g(jobs.size()), u(jobs.size());
  std::vector<int64_t> start(jobs.size() + 1, 0);  // element offsets of the jobs, for the split below
  std::vector<MatJob> mm;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const FfnJob& j = jobs[i];
    g[i] = std::make_unique_for_overwrite<float[]>(size_t(j.n * inter));
    u[i] = std::make_unique_for_overwrite<float[]>(size_t(j.n * inter));
    start[i + 1] = start[i] + j.n * inter;
    mm.push_back({j.x, j.n, j.gate, g[i].get(), j.gate_bias});
    mm.push_back({j.x, j.n, j.up, u[i].get(), j.up_bias});
  }
  matmul_many(pool, mm);
  // silu(g) * u, an exp per element: split over the pool when there is enough of it, else the
  // other threads would wait for the caller's serial loop.
  constexpr int64_t kBlock = 4096;
  const int64_t total = start.back();
  const auto silu_range = [&](int64_t b0, int64_t b1) {
    const int64_t e0 = b0 * kBlock, e1 = std::min(total, b1 * kBlock);
    size_t i = size_t(std::upper_bound(start.begin(), start.end(), e0) - start.begin()) - 1;
    for (int64_t e = e0; e < e1; ++i) {
      const int64_t stop = std::min(e1, start[i + 1]), off = e - start[i];
      if (jobs[i].clamp) clamped_swiglu(g[i].get() + off, u[i].get() + off, stop - e, *jobs[i].clamp, g[i].get() + off);
      else silu_mul(g[i].get() + off, u[i].get() + off, stop - e, g[i].get() + off);
      e = stop;
    }
  };
  if (total >= 2 * kBlock) pool.parallel_for((total + kBlock - 1) / kBlock, 1, silu_range);
  else silu_range(0, (total + kBlock - 1) / kBlock);
  mm.clear();
  for (size_t i = 0; i < jobs.size(); ++i) mm.push_back({g[i].get(), jobs[i].n, jobs[i].down, jobs[i].out, jobs[i].down_bias});
  matmul_many(pool, mm);
}

void matmul(ThreadPool& pool, const float* x, int64_t M, const WeightView& w, float* y, const WeightView& bias) {
  const int64_t N = w.rows, K = w.cols;
  std::vector<float> b(bias.empty() ? 0 : size_t(N));
  if (!bias.empty()) to_f32(bias, 0, N, b.data());
  if (is_quantized(w.dtype)) {  // fused-dequant kernels (qmatmul.h documents their semantics)
    qmatmul(pool, x, M, w, y, b.empty() ? nullptr : b.data(), active_isa());
    return;
  }
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, K));
  // Weight rows in groups of kRows (widened once into `rows`), each group against every token:
  // x is streamed once per group instead of once per row. A prompt's router reads x (tokens x
  // hidden floats, megabytes) hundreds of times otherwise.
  constexpr int64_t kRows = 8;
  pool.parallel_for(N, grain, [&](int64_t n0, int64_t n1) {
    std::vector<float> rows(w.dtype == DType::F32 ? 0 : size_t(kRows * K));
    for (int64_t g0 = n0; g0 < n1; g0 += kRows) {
      const int64_t gn = std::min(kRows, n1 - g0);
      const float* wr[kRows];
      for (int64_t r = 0; r < gn; ++r) {
        if (w.dtype == DType::F32) {
          wr[r] = static_cast<const float*>(w.data) + (g0 + r) * K;
        } else {
          to_f32(w, (g0 + r) * K, K, &rows[size_t(r * K)]);
          wr[r] = &rows[size_t(r * K)];
        }
      }
      int64_t m = 0;
      for (; m + 4 <= M; m += 4) {  // several tokens: four at a time, each exactly as dot() sums it
        const float* a[4] = {x + m * K, x + (m + 1) * K, x + (m + 2) * K, x + (m + 3) * K};
        for (int64_t r = 0; r < gn; ++r) {
          const int64_t n = g0 + r;
          const float bn = b.empty() ? 0.0f : b[size_t(n)];
          float d[4];
          dot4(a, wr[r], K, d);
          for (int i = 0; i < 4; ++i) y[(m + i) * N + n] = d[i] + bn;
        }
      }
      for (; m < M; ++m)
        for (int64_t r = 0; r < gn; ++r) {
          const int64_t n = g0 + r;
          y[m * N + n] = dot(x + m * K, wr[r], K) + (b.empty() ? 0.0f : b[size_t(n)]);
        }
    }
  });
}

void rmsnorm(const float* x, const WeightView& w, float eps, int64_t n, float* out) {
  // Eight partial sums (the compiler keeps them in vectors) and the weight widened a block at a
  // time: a decode step runs a few hundred of these on the calling thread alone.
  float part[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) part[j] += x[i + j] * x[i + j];
  float ss = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
  for (; i < n; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / float(n) + eps);
  if (w.dtype == DType::F32) {
    const float* g = static_cast<const float*>(w.data);
    for (i = 0; i < n; ++i) out[i] = x[i] * inv * g[i];
    return;
  }
  float g[256];
  for (int64_t b = 0; b < n; b += 256) {
    const int64_t m = std::min<int64_t>(256, n - b);
    to_f32(w, b, m, g);
    for (i = 0; i < m; ++i) out[b + i] = x[b + i] * inv * g[i];
  }
}

void rope(float* v, int n_heads, int head_dim, const float* cos, const float* sin) {
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* p = v + int64_t(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float a = p[i], b = p[i + half];
      p[i] = a * cos[i] - b * sin[i];
      p[i + half] = b * cos[i] + a * sin[i];
    }
  }
}

void rope_dims(float* v, int n_heads, int head_stride, int rot_dims, bool interleaved, const float* cos,
               const float* sin) {
  const int half = rot_dims / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* p = v + int64_t(h) * head_stride;
    for (int i = 0; i < half; ++i) {
      float& x = interleaved ? p[2 * i] : p[i];
      float& y = interleaved ? p[2 * i + 1] : p[i + half];
      const float a = x, b = y;
      x = a * cos[i] - b * sin[i];
      y = b * cos[i] + a * sin[i];
    }
  }
}

void softmax(float* x, int64_t n) {
  const float mx = *std::max_element(x, x + n);
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += (x[i] = std::exp(x[i] - mx));
  const float inv = 1.0f / s;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void clamped_swiglu(const float* gate, const float* up, int64_t n, const ClampedSwiglu& c, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = std::min(gate[i], c.limit), u = std::clamp(up[i], -c.limit, c.limit);
    out[i] = (u + 1.0f) * (g / (1.0f + std::exp(-g * c.alpha)));
  }
}

void topk(const float* x, int n, int k, int* idx) {
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int a, int b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
  std::copy_n(order.begin(), k, idx);
}

void route(float* probs, int64_t T, int E, int k, bool renorm, int32_t* ids, float* weights) {
  std::vector<int> idx(static_cast<size_t>(k));
  for (int64_t t = 0; t < T; ++t) {
    float* p = probs + t * E;
    softmax(p, E);
    topk(p, E, k, idx.data());
    float sum = 0.0f;
    for (int j = 0; j < k; ++j) sum += p[idx[size_t(j)]];
    for (int j = 0; j < k; ++j) {
      ids[t * k + j] = idx[size_t(j)];
      weights[t * k + j] = renorm ? p[idx[size_t(j)]] / sum : p[idx[size_t(j)]];
    }
  }
}

}  // namespace moe::cpu
