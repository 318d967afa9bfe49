// Portable reference of the quantized matmul: defines the exact semantics (qmatmul.h) that the
// SIMD variants are tested against. Plain loops, natural column order.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/qkernels.h"

namespace moe::cpu::qk {

namespace {

// x [M, K] -> xq [M, K] int8, d [M, K / 32].
void quantize_acts(const float* x, int64_t M, int64_t K, int8_t* xq, float* d) {
  for (int64_t i = 0; i < M * K / 32; ++i) {
    const float* xb = x + i * 32;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float inv = act_inv_scale(amax, &d[i]);
    for (int j = 0; j < 32; ++j) xq[i * 32 + j] = int8_t(std::nearbyint(xb[j] * inv));
  }
}

float dot_q4(const WeightView& w, int64_t n, const int8_t* xq, const float* d) {
  const int64_t K = w.cols, G = w.group, ng = K / G;
  const uint8_t* row = static_cast<const uint8_t*>(w.data) + n * K / 2;
  const uint16_t* sc = static_cast<const uint16_t*>(w.scales) + n * ng;
  float acc = 0.0f;
  for (int64_t g = 0; g < ng; ++g) {
    const int32_t z = w.dtype == DType::Q4Z ? w.zeros[n * ng + g] : 8;
    float gs = 0.0f;
    for (int64_t b = g * G; b < (g + 1) * G; b += 32) {
      int32_t dot = 0, xs = 0;
      for (int64_t c = b; c < b + 32; ++c) dot += q4_code(row, c) * xq[c], xs += xq[c];
      gs += d[b / 32] * float(dot - z * xs);
    }
    acc += f16_to_f32(sc[g]) * gs;
  }
  return acc;
}

float dot_i8(const WeightView& w, int64_t n, const int8_t* xq, const float* d) {
  const int64_t K = w.cols;
  const int8_t* row = static_cast<const int8_t*>(w.data) + n * K;
  float acc = 0.0f;
  for (int64_t b = 0; b < K; b += 32) {
    int32_t dot = 0;
    for (int64_t c = b; c < b + 32; ++c) dot += int32_t(row[c]) * xq[c];
    acc += d[b / 32] * float(dot);
  }
  return static_cast<const float*>(w.scales)[n] * acc;
}

float dot_f8(const WeightView& w, int64_t n, const float* x) {
  const int64_t K = w.cols, bw = w.group == 0 ? K : 128;
  const uint8_t* row = static_cast<const uint8_t*>(w.data) + n * K;
  const float* sc = static_cast<const float*>(w.scales);
  float acc = 0.0f;
  for (int64_t b = 0; b < K; b += bw) {
    float s = 0.0f;
    for (int64_t c = b; c < std::min(K, b + bw); ++c) s += f8e4m3_to_f32(row[c]) * x[c];
    acc += (w.group == 0 ? sc[n] : sc[(n / 128) * ((K + 127) / 128) + b / 128]) * s;
  }
  return acc;
}

float dot_mx4(const WeightView& w, int64_t n, const float* x) {
  const int64_t K = w.cols;
  const uint8_t* row = static_cast<const uint8_t*>(w.data) + n * K / 2;
  const uint8_t* sc = static_cast<const uint8_t*>(w.scales) + n * (K / 32);
  float acc = 0.0f;
  for (int64_t b = 0; b < K; b += 32) {
    float s = 0.0f;
    for (int64_t c = b; c < b + 32; ++c) s += e2m1_to_f32(uint8_t(mxfp4_code(row, c))) * x[c];
    acc += e8m0_to_f32(sc[b / 32]) * s;
  }
  return acc;
}

}  // namespace

std::unique_ptr<Rows> prepare_scalar(const Job& job) {
  const WeightView& w = job.w;
  const int64_t K = w.cols, M = job.M;
  const bool int8_acts = w.dtype != DType::F8E4M3 && w.dtype != DType::MXFP4;
  std::vector<int8_t> xq(int8_acts ? size_t(M * K) : 0);
  std::vector<float> d(int8_acts ? size_t(M * K / 32) : 0);
  if (int8_acts) quantize_acts(job.x, M, K, xq.data(), d.data());
  return make_rows([job, xq = std::move(xq), d = std::move(d)](int64_t n0, int64_t n1) {
    const WeightView& w = job.w;
    const int64_t N = w.rows, K = w.cols, M = job.M;
    for (int64_t n = n0; n < n1; ++n)
      for (int64_t m = 0; m < M; ++m) {
        float v;
        if (w.dtype == DType::F8E4M3) v = dot_f8(w, n, job.x + m * K);
        else if (w.dtype == DType::MXFP4) v = dot_mx4(w, n, job.x + m * K);
        else if (w.dtype == DType::I8) v = dot_i8(w, n, &xq[size_t(m * K)], &d[size_t(m * K / 32)]);
        else v = dot_q4(w, n, &xq[size_t(m * K)], &d[size_t(m * K / 32)]);
        job.y[m * N + n] = v + (job.bias ? job.bias[n] : 0.0f);
      }
  });
}

}  // namespace moe::cpu::qk
