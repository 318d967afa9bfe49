// Which file a reader opens: a path, or a descriptor that is already open. A model is opened
// by path once (its mapping); every later reader of the same file reopens that descriptor, so
// config, dense weights and experts come from one inode even if the path is replaced meanwhile.
#pragma once
#include <filesystem>
#include <string>

namespace moe {

struct FileSource {
  FileSource(const std::filesystem::path& p) : path(p) {}  // NOLINT: implicit, a path is a source
  FileSource(const std::filesystem::path& p, int open_fd) : path(p), fd(open_fd) {}

  std::filesystem::path path;  // for messages (and to open when fd < 0)
  int fd = -1;                 // an open descriptor of the file, owned by someone else

  // What open(2) is given: the path, or /proc/self/fd/N (the same inode, with new flags such
  // as O_DIRECT, whatever happened to the path since).
  std::filesystem::path open_path() const {
    return fd >= 0 ? std::filesystem::path("/proc/self/fd/" + std::to_string(fd)) : path;
  }
};

}  // namespace moe
