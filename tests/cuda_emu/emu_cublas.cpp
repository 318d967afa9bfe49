// The emulator's half / bfloat16 conversions and cuBLAS's GemmEx (fp32 sums, column-major, on
// the handle's stream so that graph capture records it).
#include <cmath>
#include <cstdio>
#include <cstring>

#include "cublas_v2.h"
#include "emu_state.h"
#include "quant/dtype.h"

// The project's own conversions (quant/dtype.h, tested there): round to nearest even, as the
// hardware's _rn intrinsics.
float __half2float(__half h) { return moe::f16_to_f32(h.__x); }
__half __float2half_rn(float f) { return __half{moe::f32_to_f16(f)}; }
float __bfloat162float(__nv_bfloat16 h) { return moe::bf16_to_f32(h.__x); }
__nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{moe::f32_to_bf16(f)}; }

struct cublasContext {
  cudaStream_t stream = nullptr;
};

cublasStatus_t cublasCreate(cublasHandle_t* h) { return *h = new cublasContext, CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void* workspace, size_t bytes) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (bytes && emu::classify(workspace, bytes) != emu::Mem::Device) return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t) {
  return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
const char* cublasGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_EXECUTION_FAILED";
  }
}
const char* cublasGetStatusString(cublasStatus_t s) { return cublasGetStatusName(s); }

namespace {

float element(const void* p, cudaDataType_t t, int64_t i) {
  switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    case CUDA_R_16F: return __half2float(static_cast<const __half*>(p)[i]);
    default: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  }
}

}  // namespace

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType_t at, int lda, const void* B,
                            cudaDataType_t bt, int ldb, const void* beta, void* C, cudaDataType_t ct, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || k < 0 || ct != CUDA_R_32F || (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_PEDANTIC) ||
      ta == CUBLAS_OP_C || tb == CUBLAS_OP_C)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  const int rows_a = ta == CUBLAS_OP_N ? m : k, rows_b = tb == CUBLAS_OP_N ? k : n;
  if (lda < std::max(1, rows_a) || ldb < std::max(1, rows_b) || ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
  const auto check = [](const void* p, int64_t elems, cudaDataType_t t) {
    const size_t bytes = size_t(elems) * (t == CUDA_R_32F ? 4 : 2);
    return bytes == 0 || emu::classify(p, bytes) == emu::Mem::Device;
  };
  const int cols_a = ta == CUBLAS_OP_N ? k : m, cols_b = tb == CUBLAS_OP_N ? n : k;
  if (!check(A, int64_t(lda) * (cols_a - 1) + rows_a, at) || !check(B, int64_t(ldb) * (cols_b - 1) + rows_b, bt) ||
      !check(C, int64_t(ldc) * (n - 1) + m, ct)) {
    std::fprintf(stderr, "cuda-emu: cublasGemmEx with a matrix outside device memory\n");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  emu::enqueue(h->stream, [=] {
    float* c = static_cast<float*>(C);
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        float s = 0.0f;
        for (int p = 0; p < k; ++p) {
          const float a = ta == CUBLAS_OP_N ? element(A, at, int64_t(p) * lda + i) : element(A, at, int64_t(i) * lda + p);
          const float b = tb == CUBLAS_OP_N ? element(B, bt, int64_t(j) * ldb + p) : element(B, bt, int64_t(p) * ldb + j);
          s += a * b;
        }
        float& out = c[int64_t(j) * ldc + i];
        out = al * s + (be == 0.0f ? 0.0f : be * out);
      }
  });
  return CUBLAS_STATUS_SUCCESS;
}
