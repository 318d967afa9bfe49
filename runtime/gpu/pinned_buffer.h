// A grow-only page-locked host buffer of the GPU engine (its scratch, the expert dispatch's
// step-table staging).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/cuda/check.h"

namespace moe::gpu {

// A grow-only page-locked host buffer (cudaMallocHost): copies to and from it are truly
// asynchronous and skip the driver's staging copy of pageable memory. Grow only while idle.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() {
    if (p_) cudaFreeHost(p_);  // no throw from a destructor
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void ensure(size_t bytes) {
    if (bytes <= n_) return;
    if (p_) MOE_CUDA_CHECK(cudaFreeHost(p_));
    p_ = nullptr;
    n_ = 0;
    MOE_CUDA_CHECK(cudaMallocHost(&p_, bytes));
    n_ = bytes;
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace moe::gpu
