// Page-aligned anonymous memory for O_DIRECT reads. mmap rather than aligned_alloc so that
// freeing returns the pages to the OS at once (the RSS bound of the RAM tier relies on it)
// and alignment is guaranteed whatever the size.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>

namespace moe {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // `bytes` is rounded up to 4 KiB. Throws std::bad_alloc (with the size in the log line of
  // the caller) when the mapping fails.
  explicit AlignedBuffer(size_t bytes);
  AlignedBuffer(AlignedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), unpin_(std::exchange(o.unpin_, {})) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      unpin_ = std::exchange(o.unpin_, {});
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
  // Marks the buffer page-locked by someone (a GPU's cudaHostRegister): `unpin` runs before
  // the memory is unmapped.
  void set_unpin(std::function<void(void*, size_t)> unpin) { unpin_ = std::move(unpin); }
  bool pinned() const { return bool(unpin_); }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::function<void(void*, size_t)> unpin_;
};

// Page-locks host buffers for a device's copy engine and undoes it (a GPU: cudaHostRegister /
// cudaHostUnregister). pin returns false when it could not (the buffer then stays pageable:
// copies from it remain correct, only slower).
struct HostPinner {
  std::function<bool(void*, size_t)> pin;
  std::function<void(void*, size_t)> unpin;
};

}  // namespace moe
