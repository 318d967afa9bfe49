// Reads batches of (offset, length, destination) from one file: the only I/O the expert
// tiers do. Three implementations (uring_reader.h, pread_reader.h, mmap_reader.h) return the
// same bytes; they differ in how (and whether) they use the page cache.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string_view>

namespace moe {

// O_DIRECT needs file offset, length and buffer address aligned to the logical block size.
// 4 KiB covers every NVMe/SSD we target (512 B devices accept it too), and pack records are
// laid out on it, so the tiers read `padded_bytes` into 4 KiB-aligned buffers.
inline constexpr uint64_t kDirectAlign = 4096;

inline constexpr uint64_t align_up(uint64_t n, uint64_t a = kDirectAlign) { return (n + a - 1) / a * a; }
inline bool is_direct_aligned(uint64_t offset, uint64_t length, const void* dst) {
  return offset % kDirectAlign == 0 && length % kDirectAlign == 0 &&
         reinterpret_cast<uintptr_t>(dst) % kDirectAlign == 0;
}

struct ReadRequest {
  uint64_t offset = 0;  // byte offset in the file
  uint64_t length = 0;  // bytes to read
  uint8_t* dst = nullptr;  // [length] bytes owned by the caller
};

class ExpertReader {
 public:
  virtual ~ExpertReader() = default;
  virtual std::string_view kind() const = 0;  // "uring", "pread" or "mmap"
  // True when aligned requests bypass the page cache (O_DIRECT), so the bytes read land only
  // in the caller's buffers and a RAM budget over those buffers bounds the process's memory.
  virtual bool direct() const = 0;
  virtual const std::filesystem::path& path() const = 0;
  virtual uint64_t file_size() const = 0;
  // Fills every request completely and returns when all are done; thread safe.
  // Any request is accepted: unaligned ones are served through the page cache (correct but
  // not O_DIRECT). Bytes past the end of the file are zero-filled only inside the file's last
  // 4 KiB block (the padding of a final record whose file was not padded); reading further is
  // an error. Throws std::runtime_error naming the file, the offset and errno.
  void read(std::span<const ReadRequest> requests) { read(requests, nullptr); }
  // The same, and done(i) as soon as request i is wholly in its buffer (completion order, on
  // the calling thread, never for a request that failed): a caller can use the first experts
  // of a batch while the rest are still being read. done must not throw.
  using ReadDone = std::function<void(size_t)>;
  virtual void read(std::span<const ReadRequest> requests, const ReadDone& done) = 0;
};

}  // namespace moe
