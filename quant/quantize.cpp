// Quantizers for the formats of quant/dtype.h, row dequantization and NMSE.
// Every quantizer rounds its scale to the stored precision (fp16 for Q4/Q4Z) *before*
// quantizing, so dequantize(quantize(w)) uses exactly the scale the codes were chosen for.
#include "quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace moe {

namespace {

// Candidate shrink ratios of a group's range for the clip search; 1.0 first, so the search
// can never end worse than plain round-to-nearest.
constexpr int kClipSteps = 20;
float clip_ratio(int i) { return 1.0f - 0.025f * float(i); }  // 1.0, 0.975, ..., 0.525

inline float round_f16(float f) { return f16_to_f32(f32_to_f16(f)); }

// Q4 symmetric: the value of largest magnitude maps to code 0 (w = -8 * scale), so the
// full [-8, 7] range is used (a positive extreme gives a negative scale; that is fine).
// Writes codes to q[0..n) and returns the stored (fp16-rounded) scale.
float q4_group(const float* w, int n, float ratio, uint8_t* q) {
  float mx = 0.0f;
  for (int i = 0; i < n; ++i)
    if (std::fabs(w[i]) > std::fabs(mx)) mx = w[i];
  const float scale = round_f16(mx * ratio / -8.0f);
  const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
  for (int i = 0; i < n; ++i) q[i] = uint8_t(std::clamp(std::nearbyint(w[i] * inv) + 8.0f, 0.0f, 15.0f));
  return scale;
}

// Q4Z asymmetric: range [min(w, 0), max(w, 0)] over 15 steps; including 0 keeps the zero
// point an integer in [0, 15].
float q4z_group(const float* w, int n, float ratio, uint8_t* q, uint8_t* zero) {
  float lo = 0.0f, hi = 0.0f;
  for (int i = 0; i < n; ++i) lo = std::min(lo, w[i]), hi = std::max(hi, w[i]);
  lo *= ratio, hi *= ratio;
  const float scale = round_f16((hi - lo) / 15.0f);
  const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
  const float z = std::clamp(std::nearbyint(-lo * inv), 0.0f, 15.0f);
  *zero = uint8_t(z);
  for (int i = 0; i < n; ++i) q[i] = uint8_t(std::clamp(std::nearbyint(w[i] * inv) + z, 0.0f, 15.0f));
  return scale;
}

double group_sse(const float* w, int n, const uint8_t* q, float scale, float zero) {
  double e = 0;
  for (int i = 0; i < n; ++i) {
    const double d = (double(q[i]) - zero) * scale - w[i];
    e += d * d;
  }
  return e;
}

// Nibble layout (dtype.h): in each run of 32 columns, byte i = col i | col (i + 16) << 4.
void pack_q4(const uint8_t* q, int64_t cols, uint8_t* out) {
  for (int64_t r = 0; r < cols; r += 32)
    for (int i = 0; i < 16; ++i) out[r / 2 + i] = uint8_t(q[r + i] | (q[r + i + 16] << 4));
}

void quantize_q4(const float* w, int64_t rows, int64_t cols, const QuantOptions& opt, QuantizedMatrix& m) {
  const int G = opt.group;
  const bool asym = opt.dtype == DType::Q4Z;
  const int64_t ng = cols / G;
  m.data.resize(size_t(rows * cols / 2));
  m.scales.resize(size_t(rows * ng * 2));
  if (asym) m.zeros.resize(size_t(rows * ng));
  uint16_t* sc = reinterpret_cast<uint16_t*>(m.scales.data());
  std::vector<uint8_t> q(static_cast<size_t>(cols)), trial(static_cast<size_t>(G));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < ng; ++g) {
      const float* wg = w + r * cols + g * G;
      uint8_t* qg = q.data() + g * G;
      float best_scale = 0.0f;
      uint8_t best_zero = 8;
      double best_err = INFINITY;
      for (int s = 0; s < (opt.clip_search ? kClipSteps : 1); ++s) {
        uint8_t z = 8;
        const float scale = asym ? q4z_group(wg, G, clip_ratio(s), trial.data(), &z)
                                 : q4_group(wg, G, clip_ratio(s), trial.data());
        const double err = opt.clip_search ? group_sse(wg, G, trial.data(), scale, float(z)) : 0.0;
        if (err < best_err) {
          best_err = err, best_scale = scale, best_zero = z;
          std::copy_n(trial.data(), G, qg);
        }
      }
      sc[r * ng + g] = f32_to_f16(best_scale);
      if (asym) m.zeros[size_t(r * ng + g)] = best_zero;
    }
    pack_q4(q.data(), cols, m.data.data() + r * cols / 2);
  }
}

void quantize_f8(const float* w, int64_t rows, int64_t cols, int32_t group, QuantizedMatrix& m) {
  m.data.resize(size_t(rows * cols));
  const int64_t br = group == 0 ? rows : (rows + 127) / 128, bc = group == 0 ? 1 : (cols + 127) / 128;
  const int64_t bh = group == 0 ? 1 : 128, bw = group == 0 ? cols : 128;
  m.scales.resize(size_t(br * bc * 4));
  float* sc = reinterpret_cast<float*>(m.scales.data());
  for (int64_t i = 0; i < br; ++i)
    for (int64_t j = 0; j < bc; ++j) {
      const int64_t r0 = i * bh, r1 = std::min(rows, r0 + bh), c0 = j * bw, c1 = std::min(cols, c0 + bw);
      float amax = 0.0f;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
      const float scale = amax / 448.0f;
      const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
      sc[i * bc + j] = scale;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) m.data[size_t(r * cols + c)] = f32_to_f8e4m3(w[r * cols + c] * inv);
    }
}

void quantize_i8(const float* w, int64_t rows, int64_t cols, QuantizedMatrix& m) {
  m.data.resize(size_t(rows * cols));
  m.scales.resize(size_t(rows * 4));
  float* sc = reinterpret_cast<float*>(m.scales.data());
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = w + r * cols;
    float amax = 0.0f;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(wr[c]));
    const float scale = amax / 127.0f;
    const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
    sc[r] = scale;
    for (int64_t c = 0; c < cols; ++c)
      m.data[size_t(r * cols + c)] = uint8_t(int8_t(std::clamp(std::nearbyint(wr[c] * inv), -127.0f, 127.0f)));
  }
}

// MXFP4: per 32-column block the smallest power-of-two scale that fits amax in e2m1's range
// (6), then each value to the nearest e2m1 code (ties to the even code, as round-to-nearest).
void quantize_mxfp4(const float* w, int64_t rows, int64_t cols, QuantizedMatrix& m) {
  m.data.assign(size_t(rows * cols / 2), 0);
  m.scales.resize(size_t(rows * cols / 32));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < cols / 32; ++b) {
      const float* x = w + r * cols + b * 32;
      float amax = 0.0f;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
      int e = amax > 0.0f ? int(std::ceil(std::log2(amax / 6.0f))) : -127;
      e = std::clamp(e, -127, 127);
      m.scales[size_t(r * (cols / 32) + b)] = uint8_t(e + 127);
      const float inv = std::ldexp(1.0f, -e);
      uint8_t* out = &m.data[size_t((r * cols + b * 32) / 2)];
      for (int i = 0; i < 32; ++i) {
        const float v = x[i] * inv;
        int best = 0;
        float err = std::fabs(v - e2m1_to_f32(0));
        for (int code = 1; code < 16; ++code) {
          const float d = std::fabs(v - e2m1_to_f32(uint8_t(code)));
          if (d < err) err = d, best = code;
        }
        out[i / 2] |= uint8_t(best << ((i & 1) * 4));
      }
    }
}

void check_shape(int64_t rows, int64_t cols, const QuantOptions& opt) {
  if (rows < 0 || cols < 0) throw std::invalid_argument("quantize: negative shape");
  switch (opt.dtype) {
    case DType::Q4:
    case DType::Q4Z:
      if (opt.group != 32 && opt.group != 64 && opt.group != 128)
        throw std::invalid_argument("group size " + std::to_string(opt.group) + " is not supported for " +
                                    std::string(dtype_name(opt.dtype)) + "; use 32, 64 or 128");
      if (cols % opt.group != 0)
        throw std::invalid_argument("cols (" + std::to_string(cols) + ") is not a multiple of the group size " +
                                    std::to_string(opt.group) + "; choose --group-size that divides " +
                                    std::to_string(cols));
      break;
    case DType::F8E4M3:
      if (opt.group != 0 && opt.group != 128)
        throw std::invalid_argument("F8E4M3 group must be 0 (per-row scales) or 128 (128x128 blocks), got " +
                                    std::to_string(opt.group));
      break;
    case DType::MXFP4:
      if (cols % 32 != 0)
        throw std::invalid_argument("MXFP4 needs cols (" + std::to_string(cols) + ") to be a multiple of 32");
      break;
    default: break;
  }
}

}  // namespace

WeightView QuantizedMatrix::view() const {
  WeightView v;
  v.dtype = dtype;
  v.data = data.data();
  v.rows = rows;
  v.cols = cols;
  v.scales = scales.empty() ? nullptr : scales.data();
  v.zeros = zeros.empty() ? nullptr : zeros.data();
  v.group = group;
  return v;
}

QuantizedMatrix quantize(const float* w, int64_t rows, int64_t cols, const QuantOptions& opt) {
  check_shape(rows, cols, opt);
  QuantizedMatrix m;
  m.dtype = opt.dtype;
  m.rows = rows;
  m.cols = cols;
  m.group = (opt.dtype == DType::Q4 || opt.dtype == DType::Q4Z || opt.dtype == DType::F8E4M3) ? opt.group
            : opt.dtype == DType::MXFP4                                                      ? 32
                                                                                              : 0;
  const int64_t n = rows * cols;
  switch (opt.dtype) {
    case DType::Q4:
    case DType::Q4Z: quantize_q4(w, rows, cols, opt, m); break;
    case DType::F8E4M3: quantize_f8(w, rows, cols, opt.group, m); break;
    case DType::I8: quantize_i8(w, rows, cols, m); break;
    case DType::MXFP4: quantize_mxfp4(w, rows, cols, m); break;
    case DType::F32:
      m.data.resize(size_t(n * 4));
      if (n) std::memcpy(m.data.data(), w, size_t(n * 4));
      break;
    case DType::F16:
    case DType::BF16: {
      m.data.resize(size_t(n * 2));
      uint16_t* p = reinterpret_cast<uint16_t*>(m.data.data());
      for (int64_t i = 0; i < n; ++i) p[i] = opt.dtype == DType::F16 ? f32_to_f16(w[i]) : f32_to_bf16(w[i]);
      break;
    }
  }
  return m;
}

std::vector<float> dequantize(const WeightView& w) {
  std::vector<float> out(static_cast<size_t>(w.rows * w.cols));
  for (int64_t r = 0; r < w.rows; ++r) dequantize_row(w, r, out.data() + r * w.cols);
  return out;
}

void dequantize_row(const WeightView& w, int64_t row, float* out) {
  const int64_t K = w.cols;
  switch (w.dtype) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
      for (int64_t c = 0; c < K; ++c) out[c] = load_as_f32(w.dtype, w.data, row * K + c);
      return;
    case DType::Q4:
    case DType::Q4Z: {
      const int64_t ng = K / w.group;
      const uint8_t* d = static_cast<const uint8_t*>(w.data) + row * K / 2;
      const uint16_t* sc = static_cast<const uint16_t*>(w.scales) + row * ng;
      for (int64_t c = 0; c < K; ++c) {
        const int64_t g = c / w.group;
        const float z = w.dtype == DType::Q4Z ? float(w.zeros[row * ng + g]) : 8.0f;
        out[c] = (float(q4_code(d, c)) - z) * f16_to_f32(sc[g]);
      }
      return;
    }
    case DType::F8E4M3: {
      const uint8_t* d = static_cast<const uint8_t*>(w.data) + row * K;
      const float* sc = static_cast<const float*>(w.scales);
      for (int64_t c = 0; c < K; ++c) {
        const float s = w.group == 0 ? sc[row] : sc[(row / 128) * ((K + 127) / 128) + c / 128];
        out[c] = f8e4m3_to_f32(d[c]) * s;
      }
      return;
    }
    case DType::I8: {
      const int8_t* d = static_cast<const int8_t*>(w.data) + row * K;
      const float s = static_cast<const float*>(w.scales)[row];
      for (int64_t c = 0; c < K; ++c) out[c] = float(d[c]) * s;
      return;
    }
    case DType::MXFP4: {
      const uint8_t* d = static_cast<const uint8_t*>(w.data) + row * K / 2;
      const uint8_t* sc = static_cast<const uint8_t*>(w.scales) + row * (K / 32);
      for (int64_t c = 0; c < K; ++c) out[c] = e2m1_to_f32(uint8_t(mxfp4_code(d, c))) * e8m0_to_f32(sc[c / 32]);
      return;
    }
  }
}

double nmse(const float* ref, const float* approx, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(approx[i]) - ref[i];
    num += d * d;
    den += double(ref[i]) * ref[i];
  }
  return den > 0 ? num / den : (num > 0 ? INFINITY : 0.0);
}

}  // namespace moe
