#include "kernels/cuda/device_weight.h"

namespace moe::cuda {

DeviceMatrix::DeviceMatrix(const WeightView& host) {
  const size_t nd = size_t(host.data_bytes()), ns = size_t(host.scale_bytes());
  const size_t nz = host.dtype == DType::Q4Z ? size_t(host.rows * (host.cols / host.group)) : 0;
  data_ = DeviceBuffer<uint8_t>(nd);
  scales_ = DeviceBuffer<uint8_t>(ns);
  zeros_ = DeviceBuffer<uint8_t>(nz);
  data_.upload(static_cast<const uint8_t*>(host.data), nd);
  scales_.upload(static_cast<const uint8_t*>(host.scales), ns);
  zeros_.upload(host.zeros, nz);
  w_ = DeviceWeight{host.dtype, data_.get(), host.rows, host.cols, ns ? scales_.get() : nullptr,
                    nz ? zeros_.get() : nullptr, host.group};
}

}  // namespace moe::cuda
