// Internal: which GEMV kernel family qgemv() and QgemvGrouped::run() launch. All variants compute
// the same fp32 dot products (only the summation order differs); the bench compares them side by
// side and the tests run each one. Host-only and C++17-clean (bench_gpu.cu includes it).
//
//   v0        one lane per 32-column block (Q4) / 16-column chunk (F8) of R rows, activations
//             read from global memory through L1 (lanes 128 B apart: ~32 L1 wavefronts a load).
//   smem      activations staged per block in a swizzled shared-memory tile (cp.async, double
//             buffered in K chunks): every float4 read is conflict-free; weights prefetched one
//             step ahead in registers. Decode and arithmetic exactly as v0.
//   fast      smem plus a cheaper decode: Q4 nibbles masked in place as denormal floats (one
//             AND each, the nibble's position folded into the staged activations' scale) and
//             the zero point applied once per block through the block's activation sum; FP8
//             without the 2^120 multiply (folded into the staged activations). 8 warps x 4 rows.
//   fast-r2   fast with 2 rows per warp and weights prefetched two steps ahead: twice the blocks
//             for the same N (small N, long K: Mixtral w2) and as many bytes in flight per row.
#pragma once

namespace moe::cuda::detail {

enum class QgemvVariant { V0, Smem, Fast, FastR2, Auto };
inline constexpr QgemvVariant kQgemvVariants[] = {QgemvVariant::V0, QgemvVariant::Smem, QgemvVariant::Fast,
                                                  QgemvVariant::FastR2};

// The variant qgemv() and QgemvGrouped::run() use unless a ScopedQgemvVariant says otherwise:
// Auto picks per format and token count (auto_variant).
inline constexpr QgemvVariant kDefaultQgemvVariant = QgemvVariant::Auto;

// The fastest on an H200 (scripts/gpu-check.sh, 2026-11-26), by format and tokens per launch:
//   INT4  M <= 2: fast (Mixtral w1/w3 M=1: 41% of copy vs v0 17%); M >= 3: smem (M=8: 13% vs fast 9%)
//   FP8   M <= 2: v0 (w2 M=1: 54% vs fast 44%, w1/w3 within 2%); M >= 3: smem (M=8: 20-24% vs v0 18-20%)
//   grouped: fast for both formats and T = 1 and 8.
inline QgemvVariant auto_variant(bool f8, int m, bool grouped = false) {
  if (grouped) return QgemvVariant::Fast;
  if (m >= 3) return QgemvVariant::Smem;
  return f8 ? QgemvVariant::V0 : QgemvVariant::Fast;
}

inline const char* variant_name(QgemvVariant v) {
  switch (v) {
    case QgemvVariant::V0: return "v0";
    case QgemvVariant::Smem: return "smem";
    case QgemvVariant::Fast: return "fast";
    case QgemvVariant::FastR2: return "fast-r2";
    case QgemvVariant::Auto: return "auto";
  }
  return "?";
}

// For the bench and the tests only: while one lives, this thread's qgemv() and
// QgemvGrouped::run() calls launch `v`. Nests; restores the previous choice when destroyed.
class ScopedQgemvVariant {
 public:
  explicit ScopedQgemvVariant(QgemvVariant v) : prev_(slot()) { slot() = v; }
  ~ScopedQgemvVariant() { slot() = prev_; }
  ScopedQgemvVariant(const ScopedQgemvVariant&) = delete;
  ScopedQgemvVariant& operator=(const ScopedQgemvVariant&) = delete;
  static QgemvVariant current() { return slot(); }

 private:
  static QgemvVariant& slot() {
    thread_local QgemvVariant v = kDefaultQgemvVariant;
    return v;
  }
  QgemvVariant prev_;
};

}  // namespace moe::cuda::detail
