#include "tools/synth_weights.h"

#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "quant/dtype.h"

namespace moe::cli {
namespace {

uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Q4 codes: 4-bit uniform, with code 0 (value -8) moved to 8 (value 0) so values are
// symmetric in -7..7 (P(0) = 2/16). Their standard deviation: sqrt(2 * sum k^2 / 16), k=1..7.
const float kQ4CodeStd = std::sqrt(2.0f * 140.0f / 16.0f);

// 256 FP8 codes at the normal quantiles (i + 0.5) / 256, and their standard deviation.
struct F8Table {
  std::array<uint8_t, 256> code{};
  float stddev = 1;
  F8Table() {
    double ss = 0;
    for (int i = 0; i < 256; ++i) {
      // Inverse normal CDF by bisection on erf: exact enough for a weight generator.
      const double p = (i + 0.5) / 256.0;
      double lo = -6, hi = 6;
      for (int k = 0; k < 60; ++k) {
        const double mid = 0.5 * (lo + hi);
        (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
      }
      code[size_t(i)] = f32_to_f8e4m3(float(0.5 * (lo + hi)));
      const double v = f8e4m3_to_f32(code[size_t(i)]);
      ss += v * v;
    }
    stddev = float(std::sqrt(ss / 256.0));
  }
};
const F8Table& f8_table() {
  static const F8Table t;
  return t;
}

void fill_random(uint8_t* out, int64_t n, Rng& rng) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t r = rng.next();
    std::memcpy(out + i, &r, 8);
  }
  if (i < n) {
    const uint64_t r = rng.next();
    std::memcpy(out + i, &r, size_t(n - i));
  }
}

}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix(seed);
}

uint64_t Rng::next() {
  const uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return r;
}

uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t x = seed ^ (a * 0x9e3779b97f4a7c15ull);
  splitmix(x);
  x ^= b * 0xc2b2ae3d27d4eb4full;
  return splitmix(x);
}

void fill_bf16_normal(uint16_t* out, int64_t n, float stddev, Rng& rng) {
  // Sum of four 16-bit uniforms: mean 2 * 65535, std 65536 / sqrt(3).
  const float k = stddev / (65536.0f / std::sqrt(3.0f));
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t r = rng.next();
    const float s = float((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48)) - 131070.0f;
    out[i] = f32_to_bf16(s * k);
  }
}

void fill_bf16_const(uint16_t* out, int64_t n, float v) {
  const uint16_t b = f32_to_bf16(v);
  for (int64_t i = 0; i < n; ++i) out[i] = b;
}

void fill_f32_const(float* out, int64_t n, float v) {
  for (int64_t i = 0; i < n; ++i) out[i] = v;
}

void fill_quantized(const pack::MatrixLayout& m, uint8_t* base, float stddev, Rng& rng) {
  const WeightView v = m.shape_view();
  uint8_t* data = base + m.data_offset;
  const int64_t nd = v.data_bytes();
  if (m.dtype == DType::Q4) {
    int64_t i = 0;
    for (; i + 8 <= nd; i += 8) {
      uint64_t x = rng.next();
      // Bit 0 of each nibble set where the whole nibble is zero; then move it to bit 3 (code 8).
      const uint64_t z = ~x;
      const uint64_t zero = z & (z >> 1) & (z >> 2) & (z >> 3) & 0x1111111111111111ull;
      x |= zero << 3;
      std::memcpy(data + i, &x, 8);
    }
    for (; i < nd; ++i) data[i] = 0x88;
    const uint16_t s = f32_to_f16(stddev / kQ4CodeStd);
    auto* sc = reinterpret_cast<uint16_t*>(base + m.scales_offset);
    for (int64_t g = 0; g < v.scale_bytes() / 2; ++g) sc[g] = s;
  } else if (m.dtype == DType::F8E4M3) {
    fill_random(data, nd, rng);
    const auto& t = f8_table();
    for (int64_t i = 0; i < nd; ++i) data[i] = t.code[data[i]];
    const float s = stddev / t.stddev;
    auto* sc = reinterpret_cast<float*>(base + m.scales_offset);
    for (int64_t g = 0; g < v.scale_bytes() / 4; ++g) sc[g] = s;
  } else if (m.dtype == DType::I8) {
    // Uniform codes in [-127, 127] (std 127 / sqrt(3)); per-row scales give the wanted std.
    fill_random(data, nd, rng);
    for (int64_t i = 0; i < nd; ++i)
      if (data[i] == 0x80) data[i] = 0x81;
    const float s = stddev / (127.0f / std::sqrt(3.0f));
    auto* sc = reinterpret_cast<float*>(base + m.scales_offset);
    for (int64_t g = 0; g < v.scale_bytes() / 4; ++g) sc[g] = s;
  } else if (m.dtype == DType::MXFP4) {
    // Uniform codes (all 16: e2m1 values of RMS sqrt(68.5 / 8)); the e8m0 block scale is the power
    // of two nearest the wanted std over that RMS (within a factor sqrt(2) of it).
    fill_random(data, nd, rng);
    const int e = int(std::lround(std::log2(stddev / std::sqrt(68.5f / 8.0f))));
    std::memset(base + m.scales_offset, std::clamp(e + 127, 1, 254), size_t(v.scale_bytes()));
  } else {
    throw std::invalid_argument("moe synth: quantized weights must be int4, fp8, mxfp4 or int8");
  }
}

}  // namespace moe::cli
