// Emulated CUDA (tests/cuda_emu): the WMMA API of <mma.h> as kernels/cuda uses it (16x16x16
// tiles of half or bf16 with float accumulators). A fragment's element-to-lane mapping is
// unspecified in CUDA, so code may only load, store, fill and multiply fragments; here every
// thread holds the whole tile and does the whole product itself (32 times the work, which is
// fine at test sizes). The products of 16-bit inputs are exact in fp32; the sum over k runs in
// order in fp32 (a GPU's order within one mma is its own, so tests allow fp32 rounding).
// CUDA requires 256-bit aligned pointers and ldm a multiple of 8 (16-bit) or 4 (float) bytes'
// elements: checked here, as a GPU would fault or misread.
#pragma once
#include <cstdio>
#include <cstdlib>

#include "moe_cuda_emu.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

namespace detail {

inline float widen(float v) { return v; }
inline float widen(__half v) { return __half2float(v); }
inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T>
void check(const T* p, unsigned ldm, const char* what) {
  constexpr unsigned elems = sizeof(T) == 2 ? 8u : 4u;
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0 || ldm % elems != 0) {
    std::fprintf(stderr, "cuda-emu: wmma::%s needs a 256-bit aligned pointer and ldm %% %u == 0 (got %p, %u)\n", what,
                 elems, static_cast<const void*>(p), ldm);
    std::abort();
  }
}

}  // namespace detail

// Rows x cols of the tile, stored row-major here whatever the memory layout.
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = rows * cols;
  T x[rows * cols];
};

template <class Use, int M, int N, int K, class T, class Layout, class V>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const V& v) {
  for (auto& e : f.x) e = T(v);
}

template <class Use, int M, int N, int K, class T, class Layout>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  static_assert(!std::is_same_v<Use, accumulator>, "an accumulator load takes a layout_t");
  detail::check(p, ldm, "load_matrix_sync");
  using F = fragment<Use, M, N, K, T, Layout>;
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c)
      f.x[r * F::cols + c] = std::is_same_v<Layout, row_major> ? p[size_t(r) * ldm + c] : p[size_t(c) * ldm + r];
}

template <int M, int N, int K, class T>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm, layout_t l) {
  detail::check(p, ldm, "load_matrix_sync");
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c) f.x[r * N + c] = l == mem_row_major ? p[size_t(r) * ldm + c] : p[size_t(c) * ldm + r];
}

template <int M, int N, int K, class T>
inline void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t l) {
  detail::check(static_cast<const T*>(p), ldm, "store_matrix_sync");
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c) (l == mem_row_major ? p[size_t(r) * ldm + c] : p[size_t(c) * ldm + r]) = f.x[r * N + c];
}

// d = a . b + c (d may be c).
template <int M, int N, int K, class TA, class LA, class TB, class LB, class TC>
inline void mma_sync(fragment<accumulator, M, N, K, TC>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC>& c) {
  fragment<accumulator, M, N, K, TC> out;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      float s = c.x[i * N + j];
      for (int k = 0; k < K; ++k) s += detail::widen(a.x[i * K + k]) * detail::widen(b.x[k * N + j]);
      out.x[i * N + j] = s;
    }
  d = out;
}

}  // namespace wmma
}  // namespace nvcuda
