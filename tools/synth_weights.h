// Seeded random weights for moe synth, generated directly in their stored formats (bf16,
// Q4 codes + fp16 scales, FP8 codes + fp32 scales) so a 16 GB pack is written at disk speed
// rather than at fp32-quantizer speed. Every block has its own seed: the output does not
// depend on the number of threads.
#pragma once
#include <cstdint>
#include <string_view>

#include "storage/pack_format.h"

namespace moe::cli {

// xoshiro256** seeded through splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();

 private:
  uint64_t s_[4];
};

// A seed for block (a, b) of run `seed`.
uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b);

// n bf16 values, approximately N(0, stddev^2) (sum of four uniforms).
void fill_bf16_normal(uint16_t* out, int64_t n, float stddev, Rng& rng);
void fill_bf16_const(uint16_t* out, int64_t n, float v);
void fill_f32_const(float* out, int64_t n, float v);

// A matrix of `m`'s format (Q4 or F8E4M3) at base + m's offsets whose values have standard
// deviation `stddev`: Q4 codes uniform over 1..15 (values -7..7, symmetric), FP8 codes from a
// normal quantile table; scales constant so the decoded values have the asked deviation.
void fill_quantized(const pack::MatrixLayout& m, uint8_t* base, float stddev, Rng& rng);

// The tokenizer embedded in the binary (tests/fixtures/qwen3_moe: byte-level BPE, 1500 ids).
std::string_view synth_tokenizer_json();
std::string_view synth_tokenizer_config_json();

}  // namespace moe::cli
