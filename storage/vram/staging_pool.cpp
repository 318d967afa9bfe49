#include "storage/vram/staging_pool.h"

#include <stdexcept>

#include <fmt/format.h>

#include "storage/tier/budget.h"

namespace moe {

StagingPool::StagingPool(DeviceMemory& mem, uint64_t budget, uint64_t buffer_bytes) : mem_(mem), buffer_bytes_(buffer_bytes) {
  const uint64_t n = buffer_bytes ? budget / buffer_bytes : 0;
  if (n == 0)
    throw std::invalid_argument(fmt::format("pinned staging budget {} holds no buffer of {} (the largest expert); raise it",
                                            format_bytes(budget), format_bytes(buffer_bytes)));
  try {
    for (uint64_t i = 0; i < n; ++i) bufs_.push_back(mem_.allocate_pinned(buffer_bytes));
  } catch (...) {
    for (void* p : bufs_) mem_.free_pinned(p);
    throw;
  }
  // Taken from the back: buffer 0 first, which keeps test expectations readable.
  for (size_t i = bufs_.size(); i-- > 0;) free_.push_back(int(i));
}

StagingPool::~StagingPool() {
  for (void* p : bufs_) mem_.free_pinned(p);
}

int StagingPool::take() {
  if (free_.empty()) return -1;
  const int i = free_.back();
  free_.pop_back();
  return i;
}

void StagingPool::give(int i) {
  if (i < 0 || size_t(i) >= bufs_.size()) throw std::logic_error(fmt::format("staging pool: give of unknown buffer {}", i));
  free_.push_back(i);
}

}  // namespace moe
