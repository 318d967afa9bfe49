// K/V rows of the KV cache in a narrower type than fp32 (--kv-dtype): rounding a new row in,
// widening a block of rows out for attention. Types: F32, BF16, F16 and F8E4M3 (e4m3fn with
// no scale: keys and values after the norms stay far inside its +-448 range).
#pragma once
#include <cstdint>

#include "kernels/cpu/kv_rows.h"
#include "quant/dtype.h"

namespace moe::cpu {

// True for the types a KV cache may hold.
bool kv_dtype_supported(DType t);
// out[0, n) = x rounded to t (round to nearest even; e4m3 saturates at +-448).
void kv_narrow(DType t, const float* x, int64_t n, void* out);
// out[r * width + c] = rows[(first + r) * stride + col + c] widened to fp32, for r < n, c < width.
// `stride` and `col` count elements of t.
void kv_widen(DType t, const void* rows, int64_t stride, int64_t first, int64_t n, int64_t col, int64_t width,
              float* out);
// The same from rows anywhere (kv_rows.h): out[r * width + c] = row first + r, element col + c.
void kv_widen(DType t, const KvRows& rows, int64_t first, int64_t n, int64_t width, float* out);

}  // namespace moe::cpu
