// Fused-dequantization matmul for the quantized formats of quant/dtype.h (Q4, Q4Z, F8E4M3, I8,
// MXFP4):
//   y[M, N] = x[M, K] . W[N, K]^T (+ bias[N])
// The weights are decoded inside the dot products; no dequantized copy of W is ever made.
//
// Semantics (the scalar variant defines them; SIMD variants compute the same sums in another
// order, so they agree to float rounding, ~1e-6 relative). Within one variant, row m of y has the
// same bits whatever M is (the GEMV, tile and rows-in-lanes paths add in one order; tested), so a
// batch's composition cannot change a sequence's results:
//   * K must be a multiple of 32 (and of the group size for Q4/Q4Z).
//   * Q4, Q4Z, I8: activations are quantized once per call to int8, per row of x and per block
//     of 32 columns: amax = max |x|, d = amax / 127, xq = nearbyint(x * (127 / amax)) (0 when
//     amax == 0), so |xq| <= 127. Dot products are then exact integer sums per 32-block:
//       Q4/Q4Z: y = sum_groups s_g * sum_{blocks b in g} d_b * (sum_i q_i xq_i - z_g sum_i xq_i),
//               z_g = 8 for Q4, the stored zero point for Q4Z; s_g the fp16 group scale.
//       I8:     y = s_row * sum_b d_b * sum_i q_i xq_i.
//     This is what integer dot-product hardware (AVX-512 VNNI vpdpbusd, AVX2 vpmaddubsw) does,
//     and it costs ~0.3-1% relative error against fp32 activations (see tests/quant).
//   * F8E4M3: fp32 activations, y = sum_blocks s_blk * sum_k f8(w_k) x_k (one block per row when
//     group == 0, 128 columns per block when group == 128). NaN codes (0x7f/0xff) are not
//     supported by the SIMD variants (the quantizer never produces them).
//   * MXFP4: fp32 activations, y = sum_blocks 2^(e_blk - 127) * sum_{k in blk} e2m1(w_k) x_k,
//     32 columns per block (AVX-512: vpermps decode; AVX2: vpshufb of 2x the values, widened).
// Variants (qgemm_<isa>.cpp): scalar (reference), avx2 (vpmaddubsw; tiles of up to 4 rows of x,
// and for Q4 from M >= 8 8 rows of x in the vector lanes), avx512 (VNNI; Q4 and I8 GEMV 512 / 256
// columns per step, also reused across up to 4 rows of x for M < 12; M >= 12 puts 16 rows of x in
// the vector lanes; from M > 16, where AMX is enabled (amx.h), the same sums on the tile unit, bit
// for bit). All split the N output rows over the pool's threads and software-prefetch the weight
// stream.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "kernels/cpu/thread_pool.h"
#include "quant/weight_view.h"

namespace moe::cpu {

// K of a quantized matrix must be a multiple of this (the int8 activation blocks); converters
// check it so a pack never holds a matrix these kernels refuse.
constexpr int64_t kQuantizedKMultiple = 32;

enum class Isa : uint8_t { Scalar, Avx2, Avx512 };

const char* isa_name(Isa isa);
// Whether this CPU runs a variant: AVX2 needs AVX2+FMA+F16C; AVX-512 needs F, BW, VL and VNNI.
bool isa_supported(Isa isa);
// The variant matmul uses: the MOE_CPU_ISA environment variable (scalar|avx2|avx512) when set,
// else the best supported one. Throws std::runtime_error if MOE_CPU_ISA names an unknown or
// unsupported variant. Read once per process.
Isa active_isa();
// What this process's quantized matmuls run on, for reports: "scalar", "avx2", "avx512" or
// "avx512+amx" (active_isa(), and AMX where amx_enabled() and the ISA is AVX-512).
std::string active_kernels();

// x: [M, K] fp32, y: [M, N] fp32, bias: [N] fp32 or nullptr. Throws std::invalid_argument on
// an unsupported dtype or shape, std::runtime_error if `isa` is not supported here.
void qmatmul(ThreadPool& pool, const float* x, int64_t M, const WeightView& w, float* y, const float* bias,
             Isa isa);

// One of several independent matmuls run together (qmatmul_many, ops.h matmul_many).
struct MatJob {
  const float* x;  // [M, K]
  int64_t M;
  WeightView w;  // [N, K]
  float* y;      // [M, N]
  const float* bias = nullptr;  // [N] or nullptr
};

// Runs quantized jobs as one parallel section: every job's activations are prepared first, then
// the threads split the concatenated weight rows of all jobs, in ranges of equal estimated cost
// (a row of a job with more rows of x costs more). A decode step's projections and experts each
// take a few tens of microseconds, so one start and join of the pool per group instead of one
// per matrix matters. Each y equals what qmatmul gives for that job alone, bit for bit. Throws as
// qmatmul does, before any job runs.
void qmatmul_many(ThreadPool& pool, std::span<const MatJob> jobs, Isa isa);

}  // namespace moe::cpu
