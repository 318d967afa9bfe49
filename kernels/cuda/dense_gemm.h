// Dense (unquantized) projections through cuBLAS, for prefill's many tokens:
//   y[M, N] = x[M, K] . W[N, K]^T      (W = w, N = w.rows, K = w.cols; PyTorch Linear layout)
// x and y fp32; W BF16, F16 or F32; fp32 accumulation (CUBLAS_COMPUTE_32F).
//
// cuBLAS's GEMM needs A and B of one type, so for a BF16/F16 W the activations are first
// rounded (nearest-even) to W's type in a handle-owned scratch buffer [M, K]; the result is the
// fp32 dot product of the rounded activations with W. F32 W uses x as is, in full fp32: the
// handle's math mode is CUBLAS_DEFAULT_MATH with CUBLAS_COMPUTE_32F, which never uses TF32.
//
// A quantized dense layer (Q4, Q4Z, F8E4M3; I8 has no GPU kernel yet) does not come here: it
// uses qgemv (kernels/cuda/qgemv.h), the fused-dequantization GEMV written for decode.
// dense_gemm refuses those formats with std::invalid_argument saying so.
//
// Pointers: x, y and w.data are device pointers, x and y 16-byte aligned. Asynchronous on
// `stream`. Throws std::invalid_argument for a bad format or shape (before launching anything),
// std::runtime_error for a CUDA or cuBLAS error.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/device_weight.h"

// cublas_v2.h's handle type, declared here so includers need not see cuBLAS's headers.
struct cublasContext;

namespace moe::cuda {

// Owns a cuBLAS handle and the activation scratch, and is bound to one stream at a time (the
// last call's; switching waits for the old stream, so the scratch is never shared in flight).
// The cuBLAS handle is created at the first call, not here: construction touches no device.
// Not thread-safe: one DenseGemm per stream (or per thread), as cuBLAS itself advises.
class DenseGemm {
 public:
  explicit DenseGemm(cudaStream_t stream = nullptr);
  ~DenseGemm();
  DenseGemm(const DenseGemm&) = delete;
  DenseGemm& operator=(const DenseGemm&) = delete;

  // Allocates the scratch for M * K activations up front, so that later calls up to that size
  // never allocate (an allocation synchronises the stream).
  void reserve(int64_t elements);

  cudaStream_t stream() const { return stream_; }
  // Where the activation scratch lives (a captured CUDA graph bakes it in: part of its key).
  const void* scratch_address() const { return scratch_.get(); }

 private:
  friend void dense_gemm_same_x(DenseGemm&, const float*, int64_t, const DeviceWeight*, float* const*, size_t,
                                cudaStream_t);
  // The handle, created on first use, set to `stream`.
  cublasContext* bind(cudaStream_t stream);

  cublasContext* handle_ = nullptr;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer<uint16_t> scratch_;  // [M, K] activations as bf16 / f16 bits
  // cuBLAS's workspace, ours rather than its pool's, so that a call inside CUDA graph capture
  // never allocates (cublasSetWorkspace; set again after every cublasSetStream, which resets it).
  DeviceBuffer<uint8_t> workspace_;
};

void dense_gemm(DenseGemm& handle, const float* x /*[M, K]*/, int64_t M, const DeviceWeight& w,
                float* y /*[M, N]*/, cudaStream_t stream);

// Several weights of one format and K applied to the same x (Q, K and V): y_i = x . W_i^T, the
// activations rounded to the weights' type once for all (one launch fewer per extra weight).
// Same results as dense_gemm per weight. std::invalid_argument for mismatched lists, formats or K.
// (Pointer and count, not std::span: bench_gpu.cu includes this header and nvcc builds C++17 here.)
void dense_gemm_same_x(DenseGemm& handle, const float* x /*[M, K]*/, int64_t M, const DeviceWeight* ws /*[n]*/,
                       float* const* ys /*[n] of [M, N_i]*/, size_t n, cudaStream_t stream);

}  // namespace moe::cuda
