#include "storage/io/aligned_buffer.h"

#include <sys/mman.h>

#include <new>

#include "storage/io/expert_reader.h"

namespace moe {

AlignedBuffer::AlignedBuffer(size_t bytes) {
  if (bytes == 0) return;
  const size_t n = size_t(align_up(bytes));
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  data_ = static_cast<uint8_t*>(p);
  size_ = n;
}

void AlignedBuffer::reset() {
  if (data_ && unpin_) unpin_(data_, size_);
  unpin_ = {};
  if (data_) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace moe
