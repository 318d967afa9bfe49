// Page-aligned anonymous memory for O_DIRECT reads. mmap rather than aligned_alloc so that
// freeing returns the pages to the OS at once (the RSS bound of the RAM tier relies on it)
// and alignment is guaranteed whatever the size.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>

namespace moe {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // `bytes` is rounded up to 4 KiB. Throws std::bad_alloc (with the size in the log line of
  // the caller) when the mapping fails.
  explicit AlignedBuffer(size_t bytes);
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { reset(); }

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }  // a multiple of 4 KiB
  bool empty() const { return data_ == nullptr; }
  void reset();

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace moe
