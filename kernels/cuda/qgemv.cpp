// qgemv(): argument checks, then the per-format launcher over tiles of up to kQgemvMaxM tokens.
#include "kernels/cuda/qgemv.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/cuda/check.h"

#include "kernels/cuda/qgemv_launch.h"

namespace moe::cuda {
namespace {

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

[[noreturn]] void bad(const char* who, const DeviceWeight& w, const std::string& why) {
  throw std::invalid_argument(std::string(who) + ": " + std::string(dtype_name(w.dtype)) + " weight [" +
                              std::to_string(w.rows) + ", " + std::to_string(w.cols) + "] group " +
                              std::to_string(w.group) + ": " + why);
}
[[noreturn]] void bad(const DeviceWeight& w, const std::string& why) { bad("qgemv", w, why); }

// Whether the kernels read x with 16-byte vector loads (they all do, except FP8 with K % 16 != 0).
bool vector_x(const DeviceWeight& w) { return w.dtype != DType::F8E4M3 || w.cols % 16 == 0; }

void validate(const float* x, int64_t M, const DeviceWeight& w, const float* y) {
  if (M < 0) throw std::invalid_argument("qgemv: negative token count M = " + std::to_string(M));
  detail::check_weight("qgemv", w);
  if (vector_x(w) && (!aligned16(w.data) || !aligned16(x) || !aligned16(y)))
    bad(w, "x, y and the weight data must be 16-byte aligned");
  if (M > 0 && w.rows > 0 && w.cols > 0 && (!x || !y)) bad(w, "x and y must be set");
}

}  // namespace

void detail::check_weight(const char* who, const DeviceWeight& w) {
  if (w.rows < 0 || w.cols < 0) bad(who, w, "negative shape");
  if (w.rows > INT_MAX || w.cols > INT_MAX) bad(who, w, "rows and cols must each fit in 31 bits");
  if (!w.data || !w.scales) bad(who, w, "data and scales must be set");
  switch (w.dtype) {
    case DType::Q4:
    case DType::Q4Z:
      if (w.group != 32 && w.group != 64 && w.group != 128) bad(who, w, "group must be 32, 64 or 128");
      if (w.cols % w.group != 0) bad(who, w, "cols must be a multiple of the group size");
      if (w.dtype == DType::Q4Z && !w.zeros) bad(who, w, "Q4Z needs zero points");
      break;
    case DType::F8E4M3:
      if (w.group != 0 && w.group != 128) bad(who, w, "group must be 0 (per-row scales) or 128 (128x128 blocks)");
      break;
    case DType::I8:
      if (w.group != 0) bad(who, w, "group must be 0 (one scale per row)");
      if (w.cols % 16 != 0) bad(who, w, "cols must be a multiple of 16 (16-byte loads of each row)");
      break;
    case DType::MXFP4:
      if (w.group != 32) bad(who, w, "group must be 32 (one e8m0 scale per 32 columns)");
      if (w.cols % 32 != 0) bad(who, w, "cols must be a multiple of 32");
      break;
    default: bad(who, w, "no CUDA kernel for this format (supported: Q4, Q4Z, F8E4M3, I8, MXFP4)");
  }
}

void qgemv(const float* x, int64_t M, const DeviceWeight& w, float* y, cudaStream_t stream) {
  validate(x, M, w, y);
  if (M == 0 || w.rows == 0) return;
  if (w.cols == 0) {  // empty sums
    MOE_CUDA_CHECK(cudaMemsetAsync(y, 0, size_t(M * w.rows) * sizeof(float), stream));
    return;
  }
  if (w.dtype == DType::MXFP4 || w.dtype == DType::I8) {  // one form for every variant
    const auto one = w.dtype == DType::I8 ? detail::launch_i8 : detail::launch_mx4;
    for (int64_t m0 = 0; m0 < M; m0 += kQgemvMaxM)
      one(x + m0 * w.cols, int(std::min<int64_t>(kQgemvMaxM, M - m0)), w, y + m0 * w.rows, stream);
    return;
  }
  const detail::QgemvVariant v = detail::ScopedQgemvVariant::current();
  const auto launch = w.dtype == DType::F8E4M3 ? detail::launch_f8_smem : detail::launch_q4_smem;  // V0 falls back
  for (int64_t m0 = 0; m0 < M; m0 += kQgemvMaxM) {
    const int mt = int(std::min<int64_t>(kQgemvMaxM, M - m0));
    const detail::QgemvVariant vm =
        v == detail::QgemvVariant::Auto ? detail::auto_variant(w.dtype == DType::F8E4M3, mt) : v;
    launch(vm, x + m0 * w.cols, mt, w, y + m0 * w.rows, stream);
  }
}

void detail::allow_dynamic_smem(const void* kernel, int bytes) {
  constexpr int kDefaultLimit = 48 << 10;
  if (bytes <= kDefaultLimit) return;
  int device = 0;
  MOE_CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mu;
  // (kernel, device) -> the limit set. Only ever raised: a launch never finds it lowered by another thread.
  static std::map<std::pair<const void*, int>, int> limit;
  const std::lock_guard<std::mutex> lock(mu);
  int& set = limit[{kernel, device}];
  if (bytes <= set) return;
  MOE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  set = bytes;
}

}  // namespace moe::cuda
