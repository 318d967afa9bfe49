// A file written front to back at disk speed: bytes are staged in 16 MiB aligned buffers and
// written with O_DIRECT by a background thread (double buffering: the caller fills one buffer
// while the other is on its way to disk), so a many-GB pack neither stalls on dirty-page
// throttling nor evicts the page cache. Falls back to buffered writes (with early writeback) where the file system
// refuses O_DIRECT (tmpfs).
#pragma once
#include <cstddef>
#include <cstdint>
#include <condition_variable>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>

namespace moe {

class SequentialWriter {
 public:
  // Writes to `fd` (an empty file opened for writing, owned by the caller: an OutputFile);
  // `path` names it in errors.
  SequentialWriter(int fd, const std::filesystem::path& path);
  ~SequentialWriter();
  SequentialWriter(const SequentialWriter&) = delete;
  SequentialWriter& operator=(const SequentialWriter&) = delete;

  void write(const void* p, size_t n);
  uint64_t pos() const { return pos_; }
  // Flushes everything, sets the exact size and rewrites the first 4096 bytes as `head` (n <=
  // 4096 bytes) followed by zeros; the owner of the fd fsyncs it (OutputFile::commit).
  void finish(const void* head, size_t n);
  bool direct() const { return direct_; }

 private:
  void flush_stage(bool final);
  void wait_idle();  // the background write done; rethrows its error
  void writer_loop();
  void start_writeback();
  void raw_write(const uint8_t* p, size_t n);

  std::filesystem::path path_;
  int fd_ = -1;
  bool direct_ = false;
  uint8_t* bufs_[2] = {nullptr, nullptr};
  uint8_t* stage_ = nullptr;  // the buffer being filled
  size_t staged_ = 0;
  uint64_t pos_ = 0, file_pos_ = 0, synced_ = 0;
  // Hand-off to the writer thread: one buffer of `pending_n_` bytes at a time.
  std::mutex mu_;
  std::condition_variable cv_;
  const uint8_t* pending_ = nullptr;
  size_t pending_n_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace moe
