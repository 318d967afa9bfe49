// The grouped expert GEMM on tensor cores (qgemv_grouped.h, GroupedMath::TensorCoreBf16), and the
// same for one dense weight over listed rows (tc_gemm_rows): for prompt chunks, where a weight
// sees tens to thousands of tokens and the fp32 GEMV's passes of 8 tokens leave the GPU's tensor
// cores idle.
//
// A block computes 64 tokens x 64 rows of N of one weight. Per step of 64 columns of K:
//   - x (fp32, gathered through x_rows) is rounded to bf16 into shared memory;
//   - the weight's codes are decoded in fp32 (exactly: Q4 (q - 8) * scale, Q4Z (q - zero) * scale,
//     MXFP4 e2m1 * 2^e, FP8 e4m3 * its row or block scale, INT8 q * its row scale) and rounded to
//     bf16 into shared memory;
//   - 4 warps (2 x 2) each take 32 x 32 of the outputs: 2 x 2 WMMA 16x16x16 bf16 tiles with fp32
//     accumulators, 4 k-steps.
// The next step's global loads are issued before this step's products, so they overlap them.
// Each output row is written by one block once (no atomics), and a row's value depends only on
// its token's x and the weights: not on which other tokens share the tile. The bf16 rounding
// of both operands is the price (relative error ~2^-9 per product, as for a bf16 model).
//
// Needs sm_80 (bf16 WMMA); on older devices the kernel traps and the host refuses first
// (tensor_core_gemm_supported).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include "kernels/cuda/check.h"
#include "kernels/cuda/qgemv_grouped_launch.h"
#include "quant/dtype.h"

namespace moe::cuda::detail {
namespace {

constexpr int kTm = kTcMaxM, kTn = kTcRows, kTk = 64;  // tokens, rows of N, columns of K per block step
constexpr int kTcThreads = 128;              // 4 warps, 2 x 2 over the 64 x 64 outputs
constexpr int kLd = kTk + 8;                 // bf16 row stride of the staged tiles (skews banks)
constexpr int kLdC = kTn + 4;                // fp32 row stride of the staged outputs

// One thread's share of a step's weight tile: row tid / 2 of the tile, run tid % 2 of 32
// columns, as raw bytes (16 for the 4-bit formats, 32 for FP8) plus its scale and zero point.
struct WeightRun {
  uint4 bits[2];
  float scale, zero;
  bool live;  // the row and run lie inside [N, K)
};

// Two values rounded to bf16, packed as one 32-bit word (the lower column in the low half).
__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
  return unsigned(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
         (unsigned(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16);
}

// 32 values to row[0, 32) (16-byte aligned) as four 16-byte stores: with the tile's row stride
// of 144 bytes, each quarter-warp's stores fall in distinct banks.
__device__ __forceinline__ void store32(const float (&v)[32], __nv_bfloat16* row) {
  uint4* out = reinterpret_cast<uint4*>(row);
#pragma unroll
  for (int q = 0; q < 4; ++q)
    out[q] = make_uint4(pack_bf16(v[8 * q], v[8 * q + 1]), pack_bf16(v[8 * q + 2], v[8 * q + 3]),
                        pack_bf16(v[8 * q + 4], v[8 * q + 5]), pack_bf16(v[8 * q + 6], v[8 * q + 7]));
}

// The formats (quant/dtype.h's layouts). load: the raw run at column k (k % 32 == 0, one scale
// block); decode: its 32 values in fp32 (exact), in column order.
template <bool Asym>
struct Q4Tc {  // byte i: column i (low nibble) and i + 16 (high); w = (q - zero) * scale
  static __device__ __forceinline__ void load(const GroupedDesc& e, int N, int K, int group, int n, int k, WeightRun& w) {
    w.bits[0] = *reinterpret_cast<const uint4*>(e.data + int64_t(n) * (K / 2) + k / 2);
    const int64_t g = int64_t(n) * (K / group) + k / group;
    w.scale = __half2float(__ushort_as_half(static_cast<const uint16_t*>(e.scales)[g]));
    w.zero = Asym ? float(e.zeros[g]) : 8.0f;
  }
  static __device__ __forceinline__ void decode(const WeightRun& w, float (&v)[32]) {
    const unsigned words[4] = {w.bits[0].x, w.bits[0].y, w.bits[0].z, w.bits[0].w};
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const unsigned b = (words[i / 4] >> (8 * (i % 4))) & 0xffu;
      v[i] = (float(b & 0xfu) - w.zero) * w.scale;
      v[16 + i] = (float(b >> 4) - w.zero) * w.scale;
    }
  }
};

struct Mx4Tc {  // byte i: column 2i (low nibble) and 2i + 1 (high); w = e2m1 * 2^(s - 127)
  static __device__ __forceinline__ void load(const GroupedDesc& e, int, int K, int, int n, int k, WeightRun& w) {
    w.bits[0] = *reinterpret_cast<const uint4*>(e.data + int64_t(n) * (K / 2) + k / 2);
    w.scale = e8m0_to_f32(static_cast<const uint8_t*>(e.scales)[int64_t(n) * (K / 32) + k / 32]);
  }
  static __device__ __forceinline__ void decode(const WeightRun& w, float (&v)[32]) {
    const unsigned words[4] = {w.bits[0].x, w.bits[0].y, w.bits[0].z, w.bits[0].w};
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const unsigned b = (words[i / 4] >> (8 * (i % 4))) & 0xffu;
      v[2 * i] = e2m1_to_f32(uint8_t(b & 0xfu)) * w.scale;
      v[2 * i + 1] = e2m1_to_f32(uint8_t(b >> 4)) * w.scale;
    }
  }
};

struct F8Tc {  // one e4m3 byte per column; fp32 scale per row (group 0) or 128 x 128 block
  static __device__ __forceinline__ void load(const GroupedDesc& e, int, int K, int group, int n, int k, WeightRun& w) {
    const uint4* p = reinterpret_cast<const uint4*>(e.data + int64_t(n) * K + k);
    w.bits[0] = p[0], w.bits[1] = p[1];
    const float* sc = static_cast<const float*>(e.scales);
    w.scale = group == 0 ? sc[n] : sc[int64_t(n / 128) * ((K + 127) / 128) + k / 128];
  }
  static __device__ __forceinline__ void decode(const WeightRun& w, float (&v)[32]) {
    const unsigned words[8] = {w.bits[0].x, w.bits[0].y, w.bits[0].z, w.bits[0].w,
                               w.bits[1].x, w.bits[1].y, w.bits[1].z, w.bits[1].w};
#pragma unroll
    for (int i = 0; i < 32; ++i) v[i] = f8e4m3_to_f32(uint8_t(words[i / 4] >> (8 * (i % 4)))) * w.scale;
  }
};

struct I8Tc {  // one int8 byte per column, an fp32 scale per row (the --dense int8 weights)
  static __device__ __forceinline__ void load(const GroupedDesc& e, int, int K, int, int n, int k, WeightRun& w) {
    const uint4* p = reinterpret_cast<const uint4*>(e.data + int64_t(n) * K + k);
    w.bits[0] = p[0], w.bits[1] = p[1];
    w.scale = static_cast<const float*>(e.scales)[n];
  }
  static __device__ __forceinline__ void decode(const WeightRun& w, float (&v)[32]) {
    const unsigned words[8] = {w.bits[0].x, w.bits[0].y, w.bits[0].z, w.bits[0].w,
                               w.bits[1].x, w.bits[1].y, w.bits[1].z, w.bits[1].w};
#pragma unroll
    for (int i = 0; i < 32; ++i) v[i] = float(int8_t(uint8_t(words[i / 4] >> (8 * (i % 4))))) * w.scale;
  }
};

template <class Fmt>
__device__ __forceinline__ WeightRun load_run(const GroupedDesc& e, int N, int K, int group, int n, int k) {
  WeightRun w{};
  w.live = n < N && k < K;
  if (w.live) Fmt::load(e, N, K, group, n, k, w);
  return w;
}

template <class Fmt>
__device__ __forceinline__ void store_run(const WeightRun& w, __nv_bfloat16* row) {
  float v[32];
  if (w.live) {
    Fmt::decode(w, v);
  } else {
#pragma unroll
    for (int i = 0; i < 32; ++i) v[i] = 0.0f;
  }
  store32(v, row);
}

// One thread's share of a step's activation tile: 8 float4 of the 64 x 64 fp32 values.
struct ActRuns {
  float4 v[8];
};

__device__ __forceinline__ void load_acts(const float* x, const int32_t* rows, int count, int K, int k0,
                                          ActRuns& a) {
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int f = threadIdx.x + j * kTcThreads;  // float4 index in the tile: 16 per token
    const int m = f / 16, c = k0 + (f % 16) * 4;
    a.v[j] = m < count && c < K ? *reinterpret_cast<const float4*>(x + int64_t(rows[m]) * K + c)
                                : make_float4(0.f, 0.f, 0.f, 0.f);
  }
}

__device__ __forceinline__ void store_acts(const ActRuns& a, __nv_bfloat16* sa) {
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int f = threadIdx.x + j * kTcThreads;
    // 8 bytes a thread; 16 consecutive threads fill one token's 128 bytes.
    *reinterpret_cast<uint2*>(sa + (f / 16) * kLd + (f % 16) * 4) =
        make_uint2(pack_bf16(a.v[j].x, a.v[j].y), pack_bf16(a.v[j].z, a.v[j].w));
  }
}

// The staged tiles, then (after the last step) the fp32 outputs in the same bytes.
constexpr int kTileBytes = 2 * kTm * kLd * 2;
constexpr int kOutBytes = kTm * kLdC * 4;
constexpr int kSmemBytes = kTileBytes > kOutBytes ? kTileBytes : kOutBytes;
struct alignas(32) TcSmem {  // WMMA loads and stores need 256-bit aligned pointers
  unsigned char bytes[kSmemBytes];
};

// One block's 64 tokens (rows xr / yr of x and y, `count` of them) x 64 rows of N from n0.
template <class Fmt>
__device__ __forceinline__ void tc_tile(const GroupedDesc& e, const int32_t* xr, const int32_t* yr, int count, int n0,
                                        const float* x, float* y, int N, int K, int group) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // no bf16 WMMA before sm_80; the host refuses such a device first
#else
  using namespace nvcuda;
  __shared__ TcSmem smem;
  __nv_bfloat16* sa = reinterpret_cast<__nv_bfloat16*>(smem.bytes);  // [64 tokens][kLd]
  __nv_bfloat16* sb = sa + kTm * kLd;                          // [64 rows of N][kLd]: W's layout
  const int tid = threadIdx.x, warp = tid / 32;
  const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;  // the warp's outputs in the tile
  const int wrow = tid / 2, wrun = tid % 2;                // the thread's weight run

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  ActRuns act;
  WeightRun wr = load_run<Fmt>(e, N, K, group, n0 + wrow, wrun * 32);
  load_acts(x, xr, count, K, 0, act);
  for (int k0 = 0; k0 < K; k0 += kTk) {
    store_acts(act, sa);
    store_run<Fmt>(wr, sb + wrow * kLd + wrun * 32);
    __syncthreads();
    if (k0 + kTk < K) {  // the next step's loads fly during this step's products
      wr = load_run<Fmt>(e, N, K, group, n0 + wrow, k0 + kTk + wrun * 32);
      load_acts(x, xr, count, K, k0 + kTk, act);
    }
#pragma unroll
    for (int kk = 0; kk < kTk; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], sa + (wm + 16 * i) * kLd + kk, kLd);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], sb + (wn + 16 * j) * kLd + kk, kLd);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();  // the tiles are overwritten next step (or by the outputs below)
  }

  float* sc = reinterpret_cast<float*>(smem.bytes);  // [64 tokens][kLdC]
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(sc + (wm + 16 * i) * kLdC + wn + 16 * j, acc[i][j], kLdC, wmma::mem_row_major);
  __syncthreads();
  for (int f = tid; f < kTm * kTn; f += kTcThreads) {  // consecutive threads, consecutive n
    const int m = f / kTn, n = f % kTn;
    if (m < count && n0 + n < N) y[int64_t(yr[m]) * N + n0 + n] = sc[m * kLdC + n];
  }
#endif
}

// Grid: x = the plan's items (<= 64 tokens of one expert), y = blocks of 64 rows of N.
template <class Fmt>
__global__ void __launch_bounds__(kTcThreads) grouped_gemm_tc(const GroupedLaunch a) {
  const GroupedItem it = a.items[blockIdx.x];
  tc_tile<Fmt>(a.experts[it.expert], a.x_rows + it.first, a.y_rows + it.first, it.count, blockIdx.y * kTn, a.x, a.y,
               a.N, a.K, a.group);
}

// One dense weight over the listed rows: x = blocks of 64 of them, y = blocks of 64 rows of N.
template <class Fmt>
__global__ void __launch_bounds__(kTcThreads) rows_gemm_tc(const GroupedDesc e, const int32_t* rows, int n,
                                                           const float* x, float* y, int N, int K, int group) {
  const int first = blockIdx.x * kTm;
  tc_tile<Fmt>(e, rows + first, rows + first, min(kTm, n - first), blockIdx.y * kTn, x, y, N, K, group);
}

}  // namespace

void launch_grouped_tc(const GroupedLaunch& a, DType dtype, cudaStream_t stream) {
  const dim3 grid(unsigned(a.n_items), unsigned((a.N + kTn - 1) / kTn));
  switch (dtype) {
    case DType::Q4: grouped_gemm_tc<Q4Tc<false>><<<grid, kTcThreads, 0, stream>>>(a); break;
    case DType::Q4Z: grouped_gemm_tc<Q4Tc<true>><<<grid, kTcThreads, 0, stream>>>(a); break;
    case DType::MXFP4: grouped_gemm_tc<Mx4Tc><<<grid, kTcThreads, 0, stream>>>(a); break;
    case DType::F8E4M3: grouped_gemm_tc<F8Tc><<<grid, kTcThreads, 0, stream>>>(a); break;
    default: return;  // refused on the host (tensor_core_format; I8 experts are never grouped)
  }
  MOE_CUDA_CHECK_LAUNCH();
}

void launch_rows_tc(const GroupedDesc& e, DType dtype, const int32_t* rows, int n, const float* x, float* y, int N,
                    int K, int group, cudaStream_t stream) {
  const dim3 grid(unsigned((n + kTm - 1) / kTm), unsigned((N + kTn - 1) / kTn));
  switch (dtype) {
    case DType::Q4: rows_gemm_tc<Q4Tc<false>><<<grid, kTcThreads, 0, stream>>>(e, rows, n, x, y, N, K, group); break;
    case DType::Q4Z: rows_gemm_tc<Q4Tc<true>><<<grid, kTcThreads, 0, stream>>>(e, rows, n, x, y, N, K, group); break;
    case DType::MXFP4: rows_gemm_tc<Mx4Tc><<<grid, kTcThreads, 0, stream>>>(e, rows, n, x, y, N, K, group); break;
    case DType::F8E4M3: rows_gemm_tc<F8Tc><<<grid, kTcThreads, 0, stream>>>(e, rows, n, x, y, N, K, group); break;
    case DType::I8: rows_gemm_tc<I8Tc><<<grid, kTcThreads, 0, stream>>>(e, rows, n, x, y, N, K, group); break;
    default: return;  // refused on the host (tensor_core_format)
  }
  MOE_CUDA_CHECK_LAUNCH();
}

}  // namespace moe::cuda::detail
