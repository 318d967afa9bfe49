// A CUDA emulator for tests: the project's .cu kernels, compiled as C++ by the host compiler
// (tests/cuda_emu/translate.py rewrites the <<<...>>> launches and extern __shared__), run on the
// CPU with each CUDA thread a fiber. It exists because no GPU is at hand on development machines
// or in CI, and no maintained library runs CUDA C++ on a CPU (HIP-CPU assumes 64-lane warps;
// PTX simulators need an old toolkit). It covers exactly what kernels/cuda and runtime/gpu use.
//
// Semantics: one device; every stream is synchronous (work runs when issued, so ordering bugs
// between streams are not found here); blocks run one after another; inside a block the threads
// run in order until each reaches a barrier (__syncthreads, __syncwarp, a shuffle), so a read of
// another thread's shared memory without a barrier gets stale data, and a barrier that not every
// thread reaches is reported as a deadlock. Launch limits are checked as a GPU checks them
// (threads per block, grid size, dynamic shared memory above 48 KiB without
// cudaFuncSetAttribute), and so are the calls that CUDA refuses during stream capture. New device
// allocations are filled with 0xFF bytes (NaN as floats) so reads of unwritten memory show.
// Float products are not fused here (-ffp-contract=off), where nvcc fuses a * b + c by default.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <utility>

#define MOE_CUDA_EMU 1

// Qualifiers: host code. __shared__ variables become function statics, which every thread of a
// block shares (blocks run one at a time).
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

// ---- vector types ------------------------------------------------------------------------------
struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) int2 { int x, y; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }

// ---- half and bfloat16 (bits, with the hardware's round-to-nearest-even conversions) ----------
struct __half { unsigned short __x; };
struct __nv_bfloat16 { unsigned short __x; };
typedef __nv_bfloat16 nv_bfloat16;
float __half2float(__half h);
__half __float2half_rn(float f);
float __bfloat162float(__nv_bfloat16 h);
__nv_bfloat16 __float2bfloat16_rn(float f);
inline __half __ushort_as_half(unsigned short u) { return __half{u}; }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16{u}; }

// ---- device intrinsics ------------------------------------------------------------------------
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned i; std::memcpy(&i, &f, 4); return i; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline void __sincosf(float x, float* s, float* c) { *s = std::sin(x); *c = std::cos(x); }
inline void sincosf(float x, float* s, float* c) { *s = std::sin(x); *c = std::cos(x); }
template <class T>
inline T __ldg(const T* p) { return *p; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
using std::fmaxf;
using std::fminf;

namespace emu {

// The running thread's coordinates (valid inside a kernel only).
struct ThreadCoords {
  uint3 thread, block;
  dim3 block_dim, grid_dim;
};
const ThreadCoords& coords();
void syncthreads();
void syncwarp(unsigned mask);
// A shuffle: every lane of `mask` passes its value and the lane it reads; all wait for each other.
uint64_t shuffle(unsigned mask, uint64_t value, int src_lane);
void* dynamic_smem();
int lane();

template <class T>
inline T shfl_from(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "emulated shuffles move up to 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = shuffle(mask, bits, src);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

}  // namespace emu

#define threadIdx (::emu::coords().thread)
#define blockIdx (::emu::coords().block)
#define blockDim (::emu::coords().block_dim)
#define gridDim (::emu::coords().grid_dim)
constexpr int warpSize = 32;

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::syncwarp(mask); }
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int l = emu::lane();
  int src = l ^ lane_mask;
  if (src / width != l / width) src = l;  // outside the lane's segment: its own value
  return emu::shfl_from(mask, v, src);
}
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  const int l = emu::lane();
  return emu::shfl_from(mask, v, (l / width) * width + (src_lane % width));
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int l = emu::lane();
  int src = l + int(delta);
  if (src / width != l / width) src = l;
  return emu::shfl_from(mask, v, src);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int l = emu::lane();
  int src = l - int(delta);
  if (src < 0 || src / width != l / width) src = l;
  return emu::shfl_from(mask, v, src);
}

#include "moe_cuda_emu_api.h"
