// A read-only memory map of a whole file. Pages are faulted in on use; the file is
// never copied into RAM first.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>

#include "storage/file_source.h"

namespace moe {

// Throws std::runtime_error naming the path unless it is a regular file (or a link to one):
// a FIFO or device would block or never end when read as a model file.
void require_regular_file(const std::filesystem::path& path);

class MappedFile {
 public:
  MappedFile() = default;
  // Throws std::runtime_error naming the path when it cannot be opened or mapped, or is not
  // a regular file (opened non-blocking, so a FIFO fails instead of waiting for a writer). The
  // descriptor stays open (fd()), so readers of the same file reopen it, not the path.
  explicit MappedFile(const FileSource& src);
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }
  int fd() const { return fd_; }
  FileSource source() const { return {path_, fd_}; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace moe
