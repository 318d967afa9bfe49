// The RAM tier's expert buffers under its byte budget. Not thread safe: the tier calls it
// under its lock.
//
// Freed buffers are kept by size and reused: experts of a layer share a size, so an evicted
// expert's buffer serves the next miss without munmap + mmap + fresh page faults. Kept buffers
// still count against the budget (they are still RSS) and are unmapped first when a buffer of
// another size needs the room.
#pragma once
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "storage/io/aligned_buffer.h"

namespace moe {

class BufferPool {
 public:
  explicit BufferPool(uint64_t budget) : budget_(budget) {}
  // A 4 KiB-aligned buffer of align_up(bytes), or an empty one when that would exceed the
  // budget even with no free buffer kept: the caller evicts and gives a buffer back first.
  AlignedBuffer take(uint64_t bytes);
  void give_back(AlignedBuffer b);
  // From now on every buffer handed out by take() is page-locked with `p` (once: reused buffers
  // stay pinned). Null: no more pinning (buffers already pinned stay so until unmapped).
  // Buffers kept free for reuse are pinned at once.
  void set_pinner(std::shared_ptr<const HostPinner> p);
  // Pins b now when a pinner is set and b is not pinned yet (buffers handed out before).
  void pin(AlignedBuffer& b) const;

  uint64_t budget() const { return budget_; }
  uint64_t in_use() const { return in_use_; }        // held by experts (resident or loading)
  uint64_t allocated() const { return allocated_; }  // in use + kept free: the RSS of the tier
  uint64_t peak_in_use() const { return peak_in_use_; }
  uint64_t peak_allocated() const { return peak_allocated_; }
  void reset_peaks() { peak_in_use_ = in_use_, peak_allocated_ = allocated_; }

 private:
  uint64_t budget_;
  uint64_t in_use_ = 0, allocated_ = 0, peak_in_use_ = 0, peak_allocated_ = 0;
  std::unordered_map<uint64_t, std::vector<AlignedBuffer>> free_;  // by size
  uint64_t free_bytes_ = 0;
  std::shared_ptr<const HostPinner> pinner_;
};

}  // namespace moe
