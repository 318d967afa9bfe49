// One file opened twice: with O_DIRECT for aligned reads (no page cache, so the RAM budget
// holds) and buffered for whatever is not aligned. Shared by the uring and pread readers.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "storage/file_source.h"

namespace moe {

class FileHandle {
 public:
  // `want_direct` false, or a filesystem that refuses O_DIRECT (tmpfs, some overlays: EINVAL),
  // leaves only the buffered descriptor. Throws std::runtime_error naming the path and errno.
  FileHandle(const FileSource& src, bool want_direct);
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  ~FileHandle();

  const std::filesystem::path& path() const { return path_; }
  uint64_t size() const { return size_; }
  bool direct() const { return direct_fd_ >= 0; }
  int direct_fd() const { return direct_fd_; }
  int buffered_fd() const { return buffered_fd_; }
  // The descriptor for a read: O_DIRECT when it is open and the read is aligned.
  int fd_for(uint64_t offset, uint64_t length, const void* dst) const;

  // Throws when [offset, offset + length) reaches beyond the file's last 4 KiB block: such a
  // read cannot be padding of the final record, so the file is truncated or the catalog wrong.
  void check_range(uint64_t offset, uint64_t length) const;
  // One-line message for a read that found the file shorter than when it was opened.
  std::string truncated_error(uint64_t offset) const;
  // One-line message for a failed read (errno `err`).
  std::string read_error(uint64_t offset, uint64_t length, int err) const;

 private:
  std::filesystem::path path_;
  int direct_fd_ = -1;
  int buffered_fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace moe
