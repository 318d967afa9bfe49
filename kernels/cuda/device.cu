#include <cuda_runtime.h>

#include <string>

#include "kernels/cuda/device.h"

namespace moe::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver/device" error
    return 0;
  }
  return n;
}

std::string describe_devices() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return std::string("no usable GPU (") + cudaGetErrorString(err) + ")";
  }
  std::string s = std::to_string(n) + (n == 1 ? " device" : " devices");
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    char buf[640];  // p.name is up to 256 chars
    snprintf(buf, sizeof buf, "%s %s (sm_%d%d, %.1f GiB)", i == 0 ? ":" : ",", p.name, p.major, p.minor,
             double(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
    s += buf;
  }
  return s;
}

}  // namespace moe::cuda
