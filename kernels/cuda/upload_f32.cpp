// upload_f32: a host F32/F16/BF16 weight widened once to fp32 on the device (norm vectors:
// the kernels then read fp32 without a per-element decode).
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cuda/ops.h"

namespace moe::cuda {

DeviceBuffer<float> upload_f32(const WeightView& host_w) {
  if (host_w.dtype != DType::F32 && host_w.dtype != DType::F16 && host_w.dtype != DType::BF16)
    throw std::invalid_argument("upload_f32: F32, F16 or BF16 only, got " + std::string(dtype_name(host_w.dtype)));
  if (host_w.rows < 0 || host_w.cols < 0) throw std::invalid_argument("upload_f32: negative shape");
  const size_t n = size_t(host_w.rows * host_w.cols);
  if (n && !host_w.data) throw std::invalid_argument("upload_f32: null data");
  std::vector<float> wide(n);  // [rows * cols]
  for (size_t i = 0; i < n; ++i) wide[i] = load_as_f32(host_w.dtype, host_w.data, int64_t(i));
  DeviceBuffer<float> d(n);
  d.upload(wide.data(), n);
  return d;
}

}  // namespace moe::cuda
