#include "runtime/gpu/gpu_kv.h"

#include <algorithm>
#include <utility>

namespace moe::gpu {
namespace {

// A buffer of `cap` rows holding the first `rows` rows of `old`.
cuda::DeviceBuffer<float> regrow(const cuda::DeviceBuffer<float>& old, int64_t rows, int64_t cap, int64_t row,
                                 cudaStream_t stream) {
  cuda::DeviceBuffer<float> b(size_t(cap * row));
  if (rows > 0)
    MOE_CUDA_CHECK(cudaMemcpyAsync(b.get(), old.get(), size_t(rows * row) * sizeof(float), cudaMemcpyDeviceToDevice,
                                   stream));
  return b;
}

}  // namespace

void GpuKv::reserve(int64_t n, cudaStream_t stream) {
  if (n <= capacity_) return;
  const int64_t cap = std::max<int64_t>({n, 2 * capacity_, 64});
  std::vector<cuda::DeviceBuffer<float>> old;  // freed only after the copies out of them finish
  for (auto* side : {&k_, &v_})
    for (cuda::DeviceBuffer<float>& b : *side) old.push_back(std::exchange(b, regrow(b, length_, cap, row_, stream)));
  MOE_CUDA_CHECK(cudaStreamSynchronize(stream));
  capacity_ = cap;
}

GpuKv GpuKv::prefix(int64_t n, cudaStream_t stream) const {
  GpuKv p(int(k_.size()), row_, values_);
  p.capacity_ = std::max<int64_t>(n, 64);
  for (size_t l = 0; l < k_.size(); ++l) p.k_[l] = regrow(k_[l], n, p.capacity_, row_, stream);
  for (size_t l = 0; l < v_.size(); ++l) p.v_[l] = regrow(v_[l], n, p.capacity_, row_, stream);
  p.length_ = n;
  return p;
}

}  // namespace moe::gpu
