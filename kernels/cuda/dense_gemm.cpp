// dense_gemm(): argument checks, activations narrowed to W's type, one cublasGemmEx.
#include "kernels/cuda/dense_gemm.h"

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda/check.h"
#include "kernels/cuda/cublas_check.h"
#include "kernels/cuda/dense_gemm_launch.h"

namespace moe::cuda {

void cublas_fail(cublasStatus_t status, const char* what, const char* file, int line) {
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + what + " failed: " +
                           cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ")");
}

namespace {

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

[[noreturn]] void bad(const DeviceWeight& w, const std::string& why) {
  throw std::invalid_argument("dense_gemm: " + std::string(dtype_name(w.dtype)) + " weight [" + std::to_string(w.rows) +
                              ", " + std::to_string(w.cols) + "]: " + why);
}

void validate(const float* x, int64_t M, const DeviceWeight& w, const float* y) {
  if (M < 0) throw std::invalid_argument("dense_gemm: negative token count M = " + std::to_string(M));
  if (is_quantized(w.dtype))
    bad(w, "quantized formats are not multiplied here (dense_gemm takes BF16, F16 or F32); a quantized dense layer "
           "uses qgemv (kernels/cuda/qgemv.h)");
  if (w.dtype != DType::BF16 && w.dtype != DType::F16 && w.dtype != DType::F32) bad(w, "unknown format");
  if (w.rows < 0 || w.cols < 0) bad(w, "negative shape");
  // cuBLAS takes int dimensions and leading dimensions.
  if (w.rows > INT_MAX || w.cols > INT_MAX || M > INT_MAX) bad(w, "M, rows and cols must each fit in 31 bits");
  if (M > 0 && w.rows > 0 && (!x || !y)) bad(w, "x and y must be set");
  if (w.rows > 0 && w.cols > 0 && !w.data) bad(w, "data must be set");
  if (!aligned16(x) || !aligned16(y)) bad(w, "x and y must be 16-byte aligned");
  if (reinterpret_cast<uintptr_t>(w.data) % uintptr_t(dtype_size(w.dtype)) != 0) bad(w, "data misaligned for its type");
}

cudaDataType cuda_type(DType t) { return t == DType::BF16 ? CUDA_R_16BF : t == DType::F16 ? CUDA_R_16F : CUDA_R_32F; }

}  // namespace

DenseGemm::DenseGemm(cudaStream_t stream) : stream_(stream) {}

DenseGemm::~DenseGemm() {
  if (handle_) cublasDestroy(handle_);  // no throw from a destructor; it synchronises the device itself
}

cublasContext* DenseGemm::bind(cudaStream_t stream) {
  if (!handle_) {
    cublasHandle_t h = nullptr;
    MOE_CUBLAS_CHECK(cublasCreate(&h));
    // Explicitly no TF32 (nor any other reduced-precision mode) for F32 weights: with
    // CUBLAS_COMPUTE_32F, only CUBLAS_TF32_TENSOR_OP_MATH would allow it.
    const cublasStatus_t st = cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
    if (st != CUBLAS_STATUS_SUCCESS) cublasDestroy(h);
    MOE_CUBLAS_CHECK(st);
    handle_ = h;
    workspace_ = DeviceBuffer<uint8_t>(size_t(32) << 20);  // cuBLAS's advice for Hopper: 32 MiB
    MOE_CUBLAS_CHECK(cublasSetStream(handle_, stream_));
    MOE_CUBLAS_CHECK(cublasSetWorkspace(handle_, workspace_.get(), workspace_.size()));
  }
  if (stream != stream_) {
    // Work queued on the old stream may still read the scratch that the new stream is about to
    // overwrite: let it finish first (a stream switch is rare; an event per call would cost more).
    MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    MOE_CUBLAS_CHECK(cublasSetStream(handle_, stream));
    MOE_CUBLAS_CHECK(cublasSetWorkspace(handle_, workspace_.get(), workspace_.size()));
    stream_ = stream;
  }
  return handle_;
}

void DenseGemm::reserve(int64_t elements) {
  if (elements <= int64_t(scratch_.size())) return;
  if (scratch_.size()) MOE_CUDA_CHECK(cudaStreamSynchronize(stream_));  // a queued GEMM may still read it
  scratch_ = DeviceBuffer<uint16_t>(size_t(elements));
}

void dense_gemm(DenseGemm& handle, const float* x, int64_t M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  dense_gemm_same_x(handle, x, M, &w, &y, 1, stream);
}

void dense_gemm_same_x(DenseGemm& handle, const float* x, int64_t M, const DeviceWeight* ws, float* const* ys, size_t n,
                       cudaStream_t stream) {
  if (n > 0 && (!ws || !ys)) throw std::invalid_argument("dense_gemm: null weight or output list");
  for (size_t i = 0; i < n; ++i) {
    validate(x, M, ws[i], ys[i]);
    if (ws[i].dtype != ws[0].dtype || ws[i].cols != ws[0].cols)
      bad(ws[i], "every weight of one input must share its format and K");
  }
  if (n == 0 || M == 0) return;
  const int64_t K = ws[0].cols;
  cublasHandle_t h = handle.bind(stream);
  const void* b = x;
  if (ws[0].dtype != DType::F32 && K > 0) {  // the activations rounded once, for every weight
    handle.reserve(M * K);
    detail::launch_narrow(x, M * K, ws[0].dtype, handle.scratch_.get(), stream);
    b = handle.scratch_.get();
  }
  for (size_t i = 0; i < n; ++i) {
    const DeviceWeight& w = ws[i];
    const int64_t N = w.rows;
    if (N == 0) continue;
    if (K == 0) {  // empty sums
      MOE_CUDA_CHECK(cudaMemsetAsync(ys[i], 0, size_t(M * N) * sizeof(float), stream));
      continue;
    }
    // cuBLAS is column-major; our row-major buffers read column-major are the transposes:
    //   x [M, K] row-major = x^T [K, M] col-major (ld K), W [N, K] = W^T [K, N] (ld K),
    //   y [M, N] = y^T [N, M] (ld N).
    // So y = x . W^T is computed as y^T = W . x^T: m = N, n = M, k = K, A = W^T read with
    // op T (giving W [N, K]), B = x^T with op N, C = y^T. No copy or transpose is made.
    const float alpha = 1.0f, beta = 0.0f;
    const cudaDataType t = cuda_type(w.dtype);
    MOE_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &alpha, w.data, t,
                                  int(K), b, t, int(K), &beta, ys[i], CUDA_R_32F, int(N), CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace moe::cuda
