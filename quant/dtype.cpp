#include "quant/dtype.h"

#include <cmath>

namespace moe {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::Q4: return "Q4";
    case DType::Q4Z: return "Q4Z";
    case DType::F8E4M3: return "F8E4M3";
    case DType::MXFP4: return "MXFP4";
    case DType::I8: return "I8";
  }
  return "?";
}

bool dtype_from_safetensors(std::string_view s, DType* out) {
  if (s == "F32") *out = DType::F32;
  else if (s == "F16") *out = DType::F16;
  else if (s == "BF16") *out = DType::BF16;
  else if (s == "F8_E4M3") *out = DType::F8E4M3;
  else return false;
  return true;
}

uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_to_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const float a = std::fabs(f);
  if (std::isnan(f)) return uint16_t(sign | 0x7e00u);
  if (a >= 65520.0f) return uint16_t(sign | 0x7c00u);  // rounds to inf
  if (a < 6.103515625e-05f) {                            // subnormal range: multiples of 2^-24
    return uint16_t(sign | uint16_t(std::nearbyint(a * 16777216.0f)));
  }
  uint32_t x = f32_to_bits(a);
  // Round mantissa from 23 to 10 bits, nearest-even.
  x += 0xfffu + ((x >> 13) & 1u);
  const uint32_t exp = (x >> 23) - 112u;
  return uint16_t(sign | (exp << 10) | ((x >> 13) & 0x3ffu));
}



uint8_t f32_to_f8e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = (f32_to_bits(f) >> 24) & 0x80;
  float a = std::fabs(f);
  if (a >= 448.0f) return uint8_t(sign | 0x7e);  // saturate to the largest finite value
  if (a < 0.015625f) {                           // below 2^-6: subnormal, multiples of 2^-9
    return uint8_t(sign | uint8_t(std::nearbyint(a * 512.0f)));
  }
  uint32_t x = f32_to_bits(a);
  x += 0x7ffffu + ((x >> 20) & 1u);  // round mantissa from 23 to 3 bits, nearest-even
  const uint32_t exp = (x >> 23) - 120u;
  if (exp > 15 || (exp == 15 && ((x >> 20) & 7u) == 7u)) return uint8_t(sign | 0x7e);
  return uint8_t(sign | (exp << 3) | ((x >> 20) & 7u));
}

}  // namespace moe
