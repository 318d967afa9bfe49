#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/qmatmul.h"

namespace moe::cpu {

namespace {

// One query head over fp32 rows [first, pos] (k, v at its kv head's columns): the scalar path.
void attend_head(const float* qh, const KvRows& k, const KvRows& v, int64_t first, int64_t pos, int head_dim,
                 float scale, const float* sink, float* oh, float* scratch) {
  const int64_t n = pos - first + 1;
  for (int64_t t = 0; t < n; ++t) scratch[t] = dot(qh, k.row<float>(first + t), head_dim) * scale;
  if (sink) {
    float mx = *sink;
    for (int64_t t = 0; t < n; ++t) mx = std::max(mx, scratch[t]);
    float sum = std::exp(*sink - mx);
    for (int64_t t = 0; t < n; ++t) sum += (scratch[t] = std::exp(scratch[t] - mx));
    const float inv = 1.0f / sum;
    for (int64_t t = 0; t < n; ++t) scratch[t] *= inv;
  } else {
    softmax(scratch, n);
  }
  std::fill(oh, oh + head_dim, 0.0f);
  for (int64_t t = 0; t < n; ++t) {
    const float* vt = v.row<float>(first + t);
    const float p = scratch[t];
    for (int d = 0; d < head_dim; ++d) oh[d] += p * vt[d];
  }
}

// The AVX-512 kernel's reach (attention.h): its per-head arrays hold 256 heads.
bool vector_kernel_fits(int n_q, int head_dim) { return active_isa() == Isa::Avx512 && head_dim % 16 == 0 && n_q <= 256; }
bool avx2_kernel_fits(int head_dim) { return active_isa() == Isa::Avx2 && head_dim % 8 == 0; }
bool vector_type(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

}  // namespace

void attend(const float* q, const float* k, const float* v, int64_t kv_stride, int64_t first, int64_t pos,
            const AttentionShape& s, float* out, float* scratch) {
  const int group = s.n_heads / s.n_kv_heads;
  const void* kb = k;
  const void* vb = v;
  for (int h = 0; h < s.n_heads; ++h) {
    const int64_t col = int64_t(h / group) * s.head_dim;
    attend_head(q + int64_t(h) * s.head_dim, flat_rows(kb, kv_stride, col), flat_rows(vb, kv_stride, col), first, pos,
                s.head_dim, s.scale, s.sinks ? s.sinks + h : nullptr, out + int64_t(h) * s.head_dim, scratch);
  }
}

bool attend_group(const float* q, int n_q, const KvRows& k, const KvRows& v, DType t, int64_t first, int64_t pos,
                  int head_dim, float scale, const float* sinks, float* out, float* scratch) {
  if (vector_kernel_fits(n_q, head_dim) && vector_type(t)) {
    detail::attend_group_avx512(q, n_q, k, v, t, first, pos, head_dim, scale, sinks, out, scratch);
    return true;
  }
  if (avx2_kernel_fits(head_dim) && vector_type(t)) {
    detail::attend_group_avx2(q, n_q, k, v, t, first, pos, head_dim, scale, sinks, out, scratch);
    return true;
  }
  if (t != DType::F32) return false;
  for (int g = 0; g < n_q; ++g)
    attend_head(q + int64_t(g) * head_dim, k, v, first, pos, head_dim, scale, sinks ? sinks + g : nullptr,
                out + int64_t(g) * head_dim, scratch);
  return true;
}

bool attend_group_vectorized(int n_q, int head_dim) { return vector_kernel_fits(n_q, head_dim) || avx2_kernel_fits(head_dim); }

void attend_group(const float* q, int n_q, const float* k, const float* v, int64_t kv_stride, int64_t first,
                  int64_t pos, int head_dim, float scale, const float* sinks, float* out, float* scratch) {
  const void* kb = k;
  const void* vb = v;
  attend_group(q, n_q, flat_rows(kb, kv_stride), flat_rows(vb, kv_stride), DType::F32, first, pos, head_dim, scale,
               sinks, out, scratch);
}

bool attend_group_half(const float* q, int n_q, const uint16_t* k, const uint16_t* v, DType t, int64_t kv_stride,
                       int64_t first, int64_t pos, int head_dim, float scale, const float* sinks, float* out,
                       float* scratch) {
  if (t != DType::BF16 && t != DType::F16) return false;
  const void* kb = k;
  const void* vb = v;
  return attend_group(q, n_q, flat_rows(kb, kv_stride), flat_rows(vb, kv_stride), t, first, pos, head_dim, scale,
                      sinks, out, scratch);
}

bool attend_rows(const float* q, int64_t q_stride, int R, const KvRows& k, const KvRows& v, DType t, int64_t first,
                 const int64_t* last, int head_dim, float scale, const float* sink, float* out, int64_t out_stride,
                 float* scratch) {
  if (R < 1 || R > 4 || !vector_kernel_fits(1, head_dim) || !vector_type(t)) return false;
  detail::attend_rows_avx512(q, q_stride, R, k, v, t, first, last, head_dim, scale, sink, out, out_stride, scratch);
  return true;
}

bool attend_rows(const float* q, int64_t q_stride, int R, const void* k, const void* v, DType t, int64_t kv_stride,
                 int64_t first, const int64_t* last, int head_dim, float scale, const float* sink, float* out,
                 int64_t out_stride, float* scratch) {
  return attend_rows(q, q_stride, R, flat_rows(k, kv_stride), flat_rows(v, kv_stride), t, first, last, head_dim, scale,
                     sink, out, out_stride, scratch);
}

}  // namespace moe::cpu
