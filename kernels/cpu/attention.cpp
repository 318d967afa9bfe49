#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/qmatmul.h"

namespace moe::cpu {

void attend(const float* q, const float* k, const float* v, int64_t kv_stride, int64_t first, int64_t pos,
            const AttentionShape& s, float* out, float* scratch) {
  const int group = s.n_heads / s.n_kv_heads;
  const int64_t n = pos - first + 1;
  for (int h = 0; h < s.n_heads; ++h) {
    const int kvh = h / group;
    const float* qh = q + int64_t(h) * s.head_dim;
    for (int64_t t = 0; t < n; ++t)
      scratch[t] = dot(qh, k + (first + t) * kv_stride + int64_t(kvh) * s.head_dim, s.head_dim) * s.scale;
    if (s.sinks) {
      float mx = s.sinks[h];
      for (int64_t t = 0; t < n; ++t) mx = std::max(mx, scratch[t]);
      float sum = std::exp(s.sinks[h] - mx);
      for (int64_t t = 0; t < n; ++t) sum += (scratch[t] = std::exp(scratch[t] - mx));
      const float inv = 1.0f / sum;
      for (int64_t t = 0; t < n; ++t) scratch[t] *= inv;
    } else {
      softmax(scratch, n);
    }
    float* oh = out + int64_t(h) * s.head_dim;
    std::fill(oh, oh + s.head_dim, 0.0f);
    for (int64_t t = 0; t < n; ++t) {
      const float* vt = v + (first + t) * kv_stride + int64_t(kvh) * s.head_dim;
      const float p = scratch[t];
      for (int d = 0; d < s.head_dim; ++d) oh[d] += p * vt[d];
    }
  }
}

namespace {
// The AVX-512 kernel's reach (attention.h): its per-head arrays hold 256 heads.
bool vector_kernel_fits(int n_q, int head_dim) { return active_isa() == Isa::Avx512 && head_dim % 16 == 0 && n_q <= 256; }
}  // namespace

void attend_group(const float* q, int n_q, const float* k, const float* v, int64_t kv_stride, int64_t first,
                  int64_t pos, int head_dim, float scale, const float* sinks, float* out, float* scratch) {
  if (vector_kernel_fits(n_q, head_dim))
    return detail::attend_group_avx512(q, n_q, k, v, kv_stride, first, pos, head_dim, scale, sinks, out, scratch);
  for (int g = 0; g < n_q; ++g) {
    const AttentionShape s{1, 1, head_dim, scale, sinks ? sinks + g : nullptr};
    attend(q + int64_t(g) * head_dim, k, v, kv_stride, first, pos, s, out + int64_t(g) * head_dim, scratch);
  }
}

bool attend_group_half(const float* q, int n_q, const uint16_t* k, const uint16_t* v, DType t, int64_t kv_stride,
                       int64_t first, int64_t pos, int head_dim, float scale, const float* sinks, float* out,
                       float* scratch) {
  if (!vector_kernel_fits(n_q, head_dim) || (t != DType::BF16 && t != DType::F16)) return false;
  detail::attend_group_half_avx512(q, n_q, k, v, t == DType::BF16, kv_stride, first, pos, head_dim, scale, sinks, out,
                                   scratch);
  return true;
}

bool attend_rows(const float* q, int64_t q_stride, int R, const void* k, const void* v, DType t, int64_t kv_stride,
                 int64_t first, const int64_t* last, int head_dim, float scale, const float* sink, float* out,
                 int64_t out_stride, float* scratch) {
  if (R < 1 || R > 4 || !vector_kernel_fits(1, head_dim) || (t != DType::F32 && t != DType::BF16 && t != DType::F16))
    return false;
  detail::attend_rows_avx512(q, q_stride, R, k, v, t, kv_stride, first, last, head_dim, scale, sink, out, out_stride,
                             scratch);
  return true;
}

}  // namespace moe::cpu
