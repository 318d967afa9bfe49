// Word-at-a-time decoders for the CUDA kernels: integer and one float op per element, no
// branches, no I2F (MXFP4's e2m1 aside: quant/dtype.h's decode, a few ops per nibble). They restate quant/dtype.h's formats for speed; quant/dtype.h stays the one
// definition, and tests/gpu/test_qgemv_cuda.cpp checks these against it on the host for every
// FP8 code and every nibble position (no GPU needed).
#pragma once
#include <cstdint>

#include "quant/dtype.h"

namespace moe::cuda {

// Q4/Q4Z: a 32-column block is 16 bytes = 4 words. In word j, byte p holds column 4j + p in
// its low nibble and column 16 + 4j + p in its high nibble (quant/dtype.h's layout), so the
// nibble at bit `shift` = 8p + 4h is column 16h + 4j + p.
MOE_HD constexpr int q4_column(int j, int p, int h) { return 16 * h + 4 * j + p; }

// (code - zero) for the nibble at bit `shift` of `word`, exactly. 0x4b000000 | n is the float
// 2^23 + n, so one OR and one subtract of magic = 2^23 + zero replace an int->float convert.
MOE_HD constexpr float q4_magic(int zero) { return 8388608.0f + float(zero); }
MOE_HD float q4_nibble(uint32_t word, int shift, float magic) {
  return bits_to_f32(((word >> shift) & 0xfu) | 0x4b000000u) - magic;
}

// The FP8 e4m3fn byte p of `word` as f32. Sign to bit 31 and the 7 exponent/mantissa bits to
// bits 20..26 make an f32 whose exponent is the e4m3 exponent re-biased by -120; multiplying by
// 2^120 fixes the bias (subnormals come out as f32 subnormals times 2^120: exact unless
// flush-to-zero is on, so never build this with --use_fast_math / -ftz=true).
// Codes 0x7f/0xff (NaN in e4m3fn) decode to +-480, not NaN; the quantizer never writes them.
MOE_HD float f8_byte(uint32_t word, int p) {
  const int32_t t = int32_t(word << (24 - 8 * p)) >> 4;  // bits 31..28: sign copies, 27..20: byte
  return bits_to_f32(uint32_t(t) & 0x87f00000u) * 0x1p120f;
}

// INT8: byte p of `word` as a signed value (column 4j + p of word j), exactly.
MOE_HD float i8_byte(uint32_t word, int p) { return float(int8_t(uint8_t(word >> (8 * p)))); }

// MXFP4: a 32-column block is 16 bytes = 4 words; byte i holds column 2i (low nibble) and 2i + 1
// (high), so half h (0, 1) of word j holds columns 8j + 4h .. 8j + 4h + 3, in order. d = their
// e2m1 values, before the block's e8m0 scale (exact in fp32).
MOE_HD void mx4_quad(uint32_t word, int h, float (&d)[4]) {
  const uint32_t b = word >> (16 * h);  // bytes 2h, 2h + 1 of the word in the low 16 bits
  for (int p = 0; p < 4; ++p) d[p] = e2m1_to_f32(uint8_t((b >> (4 * p)) & 0xfu));
}

}  // namespace moe::cuda
