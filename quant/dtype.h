// Element formats of weights and activations, and their scalar decode helpers.
// One definition of each format, usable from CPU code and CUDA code (MOE_HD).
//
// Quantized formats (a WeightView carries the data, scales and zero points):
//   Q4   INT4 group-wise, symmetric. Groups of `group` (32, 64 or 128) consecutive columns
//        share one fp16 scale: w = (q - 8) * scale, q in [0, 15].
//   Q4Z  INT4 group-wise, asymmetric: w = (q - zero) * scale, zero a uint8 in [0, 15] per group.
//        Nibble layout for both: each run of 32 columns is 16 bytes; byte i holds column i in
//        its low nibble and column i + 16 in its high nibble (SIMD-friendly unpacking).
//        data [rows, cols / 2] bytes, scales [rows, cols / group] fp16, zeros [rows, cols / group] u8.
//   F8E4M3 FP8 e4m3fn (bias 7, no infinities, 0x7f/0xff NaN, max 448): w = f8 * scale, with
//        scales fp32 per row [rows] (group == 0) or per 128x128 block
//        [ceil(rows / 128), ceil(cols / 128)] (group == 128, DeepSeek-V3's native layout).
//   I8   INT8 per output channel: w = q * scale, scales fp32 [rows].
//   MXFP4 OCP microscaling FP4 (gpt-oss's experts as shipped): blocks of 32 consecutive columns,
//        e2m1 values (code & 7 indexes 0, .5, 1, 1.5, 2, 3, 4, 6; bit 3 the sign) times one
//        e8m0 scale 2^(s - 127) per block. Byte i of a block's 16 holds column 2i in its low
//        nibble and 2i + 1 in its high nibble. data [rows, cols / 2], scales [rows, cols / 32] u8.
//        Every value is exact in fp32 (and in bf16 unless the scale over/underflows it).
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__CUDACC__)
#define MOE_HD __host__ __device__ inline
#else
#define MOE_HD inline
#endif

namespace moe {

// Append only: the codes are stored in packs.
enum class DType : uint8_t { F32, F16, BF16, Q4, Q4Z, F8E4M3, I8, MXFP4 };

// Bytes per element of the unquantized types; quantized types are sized by WeightView::bytes().
MOE_HD constexpr bool is_16bit_float(DType t) { return t == DType::F16 || t == DType::BF16; }
MOE_HD constexpr int dtype_size(DType t) { return t == DType::F32 ? 4 : is_16bit_float(t) ? 2 : 1; }
MOE_HD constexpr bool is_quantized(DType t) {
  return t == DType::Q4 || t == DType::Q4Z || t == DType::F8E4M3 || t == DType::I8 || t == DType::MXFP4;
}
std::string_view dtype_name(DType t);
// Safetensors spelling ("F32", "F16", "BF16", "F8_E4M3"); returns false for anything else.
bool dtype_from_safetensors(std::string_view s, DType* out);

MOE_HD float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
MOE_HD uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// bf16 is the top half of an f32: widening is exact.
MOE_HD float bf16_to_f32(uint16_t h) { return bits_to_f32(uint32_t(h) << 16); }

// Round-to-nearest-even narrowing (NaN kept quiet).
MOE_HD uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// IEEE binary16 -> f32, exact for every input (subnormals, inf, NaN).
MOE_HD float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    // Subnormal or zero: value = man * 2^-24.
    float v = float(man) * (1.0f / 16777216.0f);
    return (sign ? -v : v);
  }
  if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (man << 13));
  return bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t f32_to_f16(float f);

// FP8 e4m3fn -> f32, exact.
MOE_HD float f8e4m3_to_f32(uint8_t b) {
  const uint32_t sign = uint32_t(b & 0x80u) << 24;
  const uint32_t exp = (b >> 3) & 0xfu;
  const uint32_t man = b & 0x7u;
  if (exp == 0xf && man == 0x7) return bits_to_f32(sign | 0x7fc00000u);  // NaN
  if (exp == 0) {
    const float v = float(man) * (1.0f / 512.0f);  // subnormal: man * 2^-9
    return sign ? -v : v;
  }
  return bits_to_f32(sign | ((exp + 120u) << 23) | (man << 20));
}

// The 4-bit code of column c in one row of Q4/Q4Z data (nibble layout above).
MOE_HD int q4_code(const uint8_t* row, int64_t c) {
  const uint8_t b = row[(c / 32) * 16 + (c % 16)];
  return (c % 32) < 16 ? (b & 0x0f) : (b >> 4);
}

// f32 -> FP8 e4m3fn, round to nearest even, saturating to +-448 (NaN stays NaN).
uint8_t f32_to_f8e4m3(float f);

// MXFP4: one e2m1 code (low 4 bits) and one e8m0 block scale, exactly.
MOE_HD float e2m1_to_f32(uint8_t code) {
  const uint8_t m = code & 7u;
  const float mag = m < 4 ? 0.5f * float(m) : float(1u << ((m - 2u) >> 1)) * (m & 1u ? 1.5f : 1.0f);
  return code & 8u ? -mag : mag;
}
MOE_HD float e8m0_to_f32(uint8_t s) {
  // 2^(s - 127): s = 0 is 2^-127, a float subnormal; 255 is NaN in the spec (never written).
  return s == 0 ? bits_to_f32(0x00400000u) : bits_to_f32(uint32_t(s) << 23);
}
MOE_HD int mxfp4_code(const uint8_t* row, int64_t c) { return (row[c / 2] >> ((c & 1) * 4)) & 0xf; }

}  // namespace moe
