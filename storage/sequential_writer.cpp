#include "storage/sequential_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace moe {
namespace {
constexpr size_t kStage = size_t(16) << 20;  // a multiple of every O_DIRECT block size
constexpr size_t kBlock = 4096;
}  // namespace

SequentialWriter::SequentialWriter(int fd, const std::filesystem::path& path) : path_(path), fd_(fd) {
  const int fl = ::fcntl(fd_, F_GETFL);
  direct_ = fl >= 0 && ::fcntl(fd_, F_SETFL, fl | O_DIRECT) == 0;  // refused by tmpfs: buffered writes
  for (auto& b : bufs_) {
    b = static_cast<uint8_t*>(std::aligned_alloc(kBlock, kStage));
    if (!b) {
      std::free(bufs_[0]);
      throw std::bad_alloc();
    }
  }
  stage_ = bufs_[0];
  thread_ = std::thread([this] { writer_loop(); });
}

SequentialWriter::~SequentialWriter() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto* b : bufs_) std::free(b);
}

void SequentialWriter::writer_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || pending_ != nullptr; });
    if (pending_ == nullptr) return;  // stop_ and nothing left
    const uint8_t* p = pending_;
    const size_t n = pending_n_;
    lk.unlock();
    std::exception_ptr err;
    try {
      raw_write(p, n);
      if (!direct_) start_writeback();
    } catch (...) {
      err = std::current_exception();
    }
    lk.lock();
    if (err && !error_) error_ = err;
    pending_ = nullptr;
    cv_.notify_all();
  }
}

void SequentialWriter::wait_idle() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return pending_ == nullptr; });
  if (error_) std::rethrow_exception(error_);
}

void SequentialWriter::raw_write(const uint8_t* p, size_t n) {
  while (n > 0) {
    const ssize_t k = ::write(fd_, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0)
      throw std::runtime_error(fmt::format("{}: write failed at byte {}: {} (disk full?)", path_.string(), file_pos_,
                                           k < 0 ? std::strerror(errno) : "no progress"));
    p += k;
    n -= size_t(k);
    file_pos_ += uint64_t(k);
  }
}

void SequentialWriter::write(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    const size_t k = std::min(n, kStage - staged_);
    std::memcpy(stage_ + staged_, b, k);
    staged_ += k;
    pos_ += k;
    b += k;
    n -= k;
    if (staged_ == kStage) flush_stage(false);
  }
}

void SequentialWriter::flush_stage(bool final) {
  size_t n = staged_;
  if (final && direct_ && n % kBlock) {  // O_DIRECT writes whole blocks; finish() trims the file
    std::memset(stage_ + n, 0, kBlock - n % kBlock);
    n += kBlock - n % kBlock;
  }
  wait_idle();  // the other buffer is free again
  {
    std::lock_guard<std::mutex> lk(mu_);
    pending_ = stage_;
    pending_n_ = n;
  }
  cv_.notify_all();
  stage_ = stage_ == bufs_[0] ? bufs_[1] : bufs_[0];
  staged_ = 0;
  if (final) wait_idle();
}

// Buffered fallback: start writeback of each 64 MiB as it completes and drop the one before
// from the cache once on disk, so the disk stays busy and the cache small.
void SequentialWriter::start_writeback() {
  constexpr uint64_t kWindow = uint64_t(64) << 20;
  while (file_pos_ - synced_ >= kWindow) {
    ::sync_file_range(fd_, off_t(synced_), off_t(kWindow), SYNC_FILE_RANGE_WRITE);
    if (synced_ >= kWindow) {
      const uint64_t prev = synced_ - kWindow;
      ::sync_file_range(fd_, off_t(prev), off_t(kWindow),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
      ::posix_fadvise(fd_, off_t(prev), off_t(kWindow), POSIX_FADV_DONTNEED);
    }
    synced_ += kWindow;
  }
}

void SequentialWriter::finish(const void* head, size_t n) {
  if (n > kBlock || pos_ < kBlock) throw std::logic_error("SequentialWriter::finish: head must lie in the first block");
  flush_stage(true);
  if (::ftruncate(fd_, off_t(pos_)) != 0)
    throw std::runtime_error(fmt::format("{}: cannot set the size: {}", path_.string(), std::strerror(errno)));
  // The first block is rewritten whole (an aligned write): `head`, then zeros.
  uint8_t* block = stage_;  // idle: flush_stage(true) waited for the writer
  std::memset(block, 0, kBlock);
  std::memcpy(block, head, n);
  if (::pwrite(fd_, block, kBlock, 0) != ssize_t(kBlock))
    throw std::runtime_error(fmt::format("{}: cannot write the header: {}", path_.string(), std::strerror(errno)));
}

}  // namespace moe
