// What CUDA devices this process can see (the backend itself comes with the GPU engine).
#pragma once
#include <string>

namespace moe::cuda {

int device_count();           // 0 when no driver or no GPU
std::string describe_devices();  // one line, e.g. "1 device: NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)"

}  // namespace moe::cuda
