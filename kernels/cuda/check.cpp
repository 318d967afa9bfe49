#include "kernels/cuda/check.h"

#include <stdexcept>
#include <string>

namespace moe::cuda {

void cuda_fail(cudaError_t err, const char* what, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so the caller may carry on after catching
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + what + " failed: " +
                           cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

}  // namespace moe::cuda
