// The fast variants' decoders (qgemv_variant.h: fast, fast-r2), host + device so that
// tests/gpu/test_qgemv_cuda.cpp checks them against quant/dtype.h without a GPU. Each returns the
// weight times a power of two; the kernels put the inverse power into the staged activations
// (q4_fast_x_scale, kF8FastXScale) and the scales (kQ4FastUnit, kF8FastUnit), so every product is
// exact-then-rounded as before, only 2^-53 or 2^-56 times smaller.
#pragma once
#include <cstdint>

#include "quant/dtype.h"

namespace moe::cuda {

// Q4: the nibble of column 16h + 4j + p in word j, masked where it lies, read as a float:
// code * 2^(e - 149) with e = 8 (p % 2) + 4h, a denormal (one AND; bits <= 15 stay below the
// exponent field). half = the word for p < 2, the word >> 16 for p >= 2 (one shift per word).
MOE_HD float q4_fast_nibble(uint32_t half, int p, int h) { return bits_to_f32(half & (0xfu << (8 * (p % 2) + 4 * h))); }
MOE_HD uint32_t q4_fast_half(uint32_t word, int p) { return p < 2 ? word : word >> 16; }
// The staged activation of column c (0..31) of a block is x * q4_fast_x_scale(c): products come
// out as code * x * 2^-53 (2^(e - 149) * 2^(96 - e)). Overflows only for |x| >= 2^32.
MOE_HD float q4_fast_x_scale(int c) {
  const int e = 8 * ((c % 4) % 2) + 4 * ((c / 16) % 2);
  return bits_to_f32(uint32_t(127 + 96 - e) << 23);
}
inline constexpr float kQ4FastUnit = 0x1p-53f;  // of the products and the block sums of x

// FP8: decode.h's f8_byte without its final * 2^120 (the value * 2^-120; e4m3 subnormals are f32
// subnormals, exact). Staged activations are x * 2^64: products come out as value * x * 2^-56.
MOE_HD float f8_fast_byte(uint32_t word, int p) {
  const int32_t t = int32_t(word << (24 - 8 * p)) >> 4;
  return bits_to_f32(uint32_t(t) & 0x87f00000u);
}
inline constexpr float kF8FastXScale = 0x1p64f;
inline constexpr float kF8FastUnit = 0x1p-56f;

}  // namespace moe::cuda
