#include "storage/io/file_handle.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "storage/io/expert_reader.h"

namespace moe {

FileHandle::FileHandle(const FileSource& src, bool want_direct) : path_(src.path) {
  const std::filesystem::path path = src.open_path();
  buffered_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (buffered_fd_ < 0) throw std::runtime_error(fmt::format("{}: cannot open: {}", path_.string(), std::strerror(errno)));
  struct stat st {};
  if (::fstat(buffered_fd_, &st) != 0) {
    const int e = errno;
    ::close(buffered_fd_);
    throw std::runtime_error(fmt::format("{}: cannot stat: {}", path_.string(), std::strerror(e)));
  }
  size_ = uint64_t(st.st_size);
  // EINVAL means the filesystem has no O_DIRECT; we then read through the page cache, which
  // is correct but uses memory outside the budget (direct() reports it).
  if (want_direct) direct_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
}

FileHandle::~FileHandle() {
  if (direct_fd_ >= 0) ::close(direct_fd_);
  if (buffered_fd_ >= 0) ::close(buffered_fd_);
}

int FileHandle::fd_for(uint64_t offset, uint64_t length, const void* dst) const {
  return direct_fd_ >= 0 && is_direct_aligned(offset, length, dst) ? direct_fd_ : buffered_fd_;
}

void FileHandle::check_range(uint64_t offset, uint64_t length) const {
  if (offset + length < offset || offset + length > align_up(size_))
    throw std::runtime_error(fmt::format("{}: read of {} bytes at offset {} goes past the end of the file ({} bytes); "
                                         "the file is truncated or does not match its index",
                                         path_.string(), length, offset, size_));
}

std::string FileHandle::truncated_error(uint64_t offset) const {
  return fmt::format("{}: the file ends before offset {} although it had {} bytes when opened: it was truncated "
                     "while in use; do not modify a model file while moe runs (write a new one and rename it)",
                     path_.string(), offset, size_);
}

std::string FileHandle::read_error(uint64_t offset, uint64_t length, int err) const {
  return fmt::format("{}: read of {} bytes at offset {} failed: {} (errno {})", path_.string(), length, offset,
                     std::strerror(err), err);
}

}  // namespace moe
