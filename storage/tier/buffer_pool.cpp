#include "storage/tier/buffer_pool.h"

#include <algorithm>

#include "storage/io/expert_reader.h"

namespace moe {

AlignedBuffer BufferPool::take(uint64_t bytes) {
  const uint64_t n = align_up(std::max<uint64_t>(bytes, 1));
  AlignedBuffer b;
  if (auto it = free_.find(n); it != free_.end() && !it->second.empty()) {
    b = std::move(it->second.back());
    it->second.pop_back();
    free_bytes_ -= n;
  } else {
    // Unmap kept buffers of other sizes until the new one fits (or none is left).
    for (auto it2 = free_.begin(); allocated_ + n > budget_ && it2 != free_.end(); ++it2)
      while (allocated_ + n > budget_ && !it2->second.empty()) {
        allocated_ -= it2->second.back().size();
        free_bytes_ -= it2->second.back().size();
        it2->second.pop_back();
      }
    if (allocated_ + n > budget_) return {};
    b = AlignedBuffer(n);
    allocated_ += n;
    peak_allocated_ = std::max(peak_allocated_, allocated_);
  }
  in_use_ += n;
  peak_in_use_ = std::max(peak_in_use_, in_use_);
  pin(b);
  return b;
}

void BufferPool::pin(AlignedBuffer& b) const {
  if (pinner_ && !b.empty() && !b.pinned() && pinner_->pin(b.data(), b.size())) b.set_unpin(pinner_->unpin);
}

void BufferPool::set_pinner(std::shared_ptr<const HostPinner> p) {
  pinner_ = std::move(p);
  for (auto& [_, bufs] : free_)
    for (AlignedBuffer& b : bufs) pin(b);
}

void BufferPool::give_back(AlignedBuffer b) {
  if (b.empty()) return;
  in_use_ -= b.size();
  free_bytes_ += b.size();
  free_[b.size()].push_back(std::move(b));
}

}  // namespace moe
