// Pinned host buffers that host->device copies read from. Expert bytes in the RAM tier sit in
// pageable memory; a copy engine only reads page-locked memory asynchronously (from pageable
// memory CUDA copies through its own bounce buffer, synchronously). So each copy first
// memcpy's the expert into a staging buffer, which stays busy until the copy's ticket is done.
// A few buffers suffice: they are reused as copies finish. Not thread safe (the tier locks).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "storage/vram/device_api.h"

namespace moe {

class StagingPool {
 public:
  // floor(budget / buffer_bytes) buffers of buffer_bytes each. Throws std::invalid_argument
  // when the budget holds none.
  StagingPool(DeviceMemory& mem, uint64_t budget, uint64_t buffer_bytes);
  ~StagingPool();
  StagingPool(const StagingPool&) = delete;
  StagingPool& operator=(const StagingPool&) = delete;

  int take();          // a free buffer's index, or -1 when all are busy
  void give(int i);    // the copy reading buffer i is done
  uint8_t* data(int i) const { return static_cast<uint8_t*>(bufs_[size_t(i)]); }
  size_t size() const { return bufs_.size(); }
  size_t free_count() const { return free_.size(); }
  uint64_t buffer_bytes() const { return buffer_bytes_; }
  uint64_t bytes() const { return buffer_bytes_ * bufs_.size(); }

 private:
  DeviceMemory& mem_;
  uint64_t buffer_bytes_;
  std::vector<void*> bufs_;
  std::vector<int> free_;
};

}  // namespace moe
