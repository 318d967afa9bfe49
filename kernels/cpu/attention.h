// Causal grouped-query attention of one query token over a sequence's KV cache.
#pragma once
#include <cstdint>

#include "kernels/cpu/kv_rows.h"
#include "quant/dtype.h"

namespace moe::cpu {

struct AttentionShape {
  int n_heads = 0;
  int n_kv_heads = 0;  // query head h reads kv head h / (n_heads / n_kv_heads)
  int head_dim = 0;
  float scale = 0.0f;  // usually 1/sqrt(head_dim)
  // [n_heads] or nullptr: one extra logit per head that joins the softmax and is then dropped
  // (gpt-oss's attention sinks: they take probability mass without adding a value).
  const float* sinks = nullptr;
};

// q: [n_heads, head_dim] of the token at position `pos`.
// k, v: rows [0, pos] of [*, n_kv_heads * head_dim] (row stride `kv_stride` floats).
// Attends to keys in [first, pos] (first > 0 under a sliding window).
// out: [n_heads, head_dim]; scratch: >= pos + 1 floats.
void attend(const float* q, const float* k, const float* v, int64_t kv_stride, int64_t first, int64_t pos,
            const AttentionShape& s, float* out, float* scratch);

// The same for the n_q query heads that share one kv head (grouped-query attention): q, out
// [n_q, head_dim]; k, v: that kv head's columns of the cached rows (kv_rows.h: contiguous or in
// pages) in type t (F32, BF16 or F16); sinks [n_q] or nullptr; scratch >= n_q * (pos - first + 1)
// floats. Each key and value row is read once for the group. With AVX-512 (the active_isa() of
// qmatmul.h) and head_dim a multiple of 16 (up to 256 heads per group) a vector kernel runs: its
// sums and exp differ from attend's in rounding only (~1e-7 relative); with AVX2 + FMA + F16C
// and head_dim a multiple of 8, an AVX2 one does; otherwise attend per head.
// bf16 / f16 rows are widened in registers as they are read, so the cache streams at its stored
// width. Returns false, doing nothing, when t is not F32 and no vector kernel covers the call:
// the caller then widens the rows itself and calls this with F32 rows.
bool attend_group(const float* q, int n_q, const KvRows& k, const KvRows& v, DType t, int64_t first, int64_t pos,
                  int head_dim, float scale, const float* sinks, float* out, float* scratch);
// Whether a vector kernel takes attend_group calls of this shape (so bf16 / f16 rows are read in
// place) on this CPU.
bool attend_group_vectorized(int n_q, int head_dim);
// Contiguous fp32 rows (kv_stride floats apart), k and v at the kv head's first column.
void attend_group(const float* q, int n_q, const float* k, const float* v, int64_t kv_stride, int64_t first,
                  int64_t pos, int head_dim, float scale, const float* sinks, float* out, float* scratch);
// Contiguous bf16 / f16 rows (kv_stride elements apart).
bool attend_group_half(const float* q, int n_q, const uint16_t* k, const uint16_t* v, DType t, int64_t kv_stride,
                       int64_t first, int64_t pos, int head_dim, float scale, const float* sinks, float* out,
                       float* scratch);

// Up to 4 consecutive query tokens of one sequence against a kv head that serves one query head
// (attention without grouped queries): q rows r < R at q + r * q_stride attend keys [first,
// last[r]] (last non-decreasing); out rows at out + r * out_stride; k, v as for attend_group
// (t: F32, BF16 or F16); sink: the head's sink or nullptr; scratch >= R * (last[R-1] - first + 1).
// Each row's result is attend_group's for that row alone, bit for bit, while every key and value
// row is read once for the R tokens. Returns false, doing nothing, where no vector kernel covers
// the call: the caller then attends row by row.
bool attend_rows(const float* q, int64_t q_stride, int R, const KvRows& k, const KvRows& v, DType t, int64_t first,
                 const int64_t* last, int head_dim, float scale, const float* sink, float* out, int64_t out_stride,
                 float* scratch);
// Contiguous rows (kv_stride elements apart).
bool attend_rows(const float* q, int64_t q_stride, int R, const void* k, const void* v, DType t, int64_t kv_stride,
                 int64_t first, const int64_t* last, int head_dim, float scale, const float* sink, float* out,
                 int64_t out_stride, float* scratch);

namespace detail {
void attend_rows_avx512(const float* q, int64_t q_stride, int R, const KvRows& k, const KvRows& v, DType t,
                        int64_t first, const int64_t* last, int head_dim, float scale, const float* sink, float* out,
                        int64_t out_stride, float* scratch);
void attend_group_avx512(const float* q, int n_q, const KvRows& k, const KvRows& v, DType t, int64_t first,
                         int64_t pos, int head_dim, float scale, const float* sinks, float* out, float* scratch);
void attend_group_avx2(const float* q, int n_q, const KvRows& k, const KvRows& v, DType t, int64_t first,
                       int64_t pos, int head_dim, float scale, const float* sinks, float* out, float* scratch);
}  // namespace detail

}  // namespace moe::cpu
