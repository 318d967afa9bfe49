#include "kernels/cpu/kv_convert.h"

#include <array>
#include <cstring>

#include "kernels/cpu/ops.h"

namespace moe::cpu {

namespace {

// e4m3 has 256 codes: a table widens them with one load each.
const std::array<float, 256>& e4m3_table() {
  static const std::array<float, 256> t = [] {
    std::array<float, 256> a{};
    for (int i = 0; i < 256; ++i) a[size_t(i)] = f8e4m3_to_f32(uint8_t(i));
    return a;
  }();
  return t;
}

// One row of `n` elements of t. F32, BF16 and F16 widen as weights do (to_f32); e4m3 here has no
// scale, which weights' F8E4M3 always has, so it takes its own table.
void widen_row(DType t, const void* src, int64_t n, float* out) {
  if (t != DType::F8E4M3) return to_f32(WeightView{t, src, 1, n}, 0, n, out);
  const auto& tab = e4m3_table();
  const uint8_t* p = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) out[i] = tab[p[i]];
}

}  // namespace

bool kv_dtype_supported(DType t) {
  return t == DType::F32 || t == DType::BF16 || t == DType::F16 || t == DType::F8E4M3;
}

void kv_narrow(DType t, const float* x, int64_t n, void* out) {
  switch (t) {
    case DType::F32: std::memcpy(out, x, size_t(n) * sizeof(float)); return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(out)[i] = f32_to_bf16(x[i]);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(out)[i] = f32_to_f16(x[i]);
      return;
    case DType::F8E4M3:
      for (int64_t i = 0; i < n; ++i) static_cast<uint8_t*>(out)[i] = f32_to_f8e4m3(x[i]);
      return;
    default: break;
  }
}

void kv_widen(DType t, const void* rows, int64_t stride, int64_t first, int64_t n, int64_t col, int64_t width,
              float* out) {
  const size_t es = size_t(dtype_size(t));
  const char* base = static_cast<const char*>(rows);
  for (int64_t r = 0; r < n; ++r)
    widen_row(t, base + size_t((first + r) * stride + col) * es, width, out + r * width);
}

void kv_widen(DType t, const KvRows& rows, int64_t first, int64_t n, int64_t width, float* out) {
  const size_t es = size_t(dtype_size(t));
  for (int64_t r = 0; r < n; ++r) {
    const int64_t p = first + r;
    const char* page = static_cast<const char*>(rows.pages[p >> rows.shift]);
    const int64_t at = (p & ((int64_t(1) << rows.shift) - 1)) * rows.stride + rows.col;
    widen_row(t, page + size_t(at) * es, width, out + r * width);
  }
}

}  // namespace moe::cpu
