// Picks a reader from the CLI's `--io uring|mmap|pread`.
#pragma once
#include <iosfwd>
#include <memory>
#include <string_view>

#include "storage/io/expert_reader.h"
#include "storage/io/uring_reader.h"

namespace moe {

struct ReaderOptions {
  UringOptions uring;              // queue depth, chunking, O_DIRECT; also the init-failure test hook
  bool direct = true;              // O_DIRECT for uring and pread (false: always buffered)
  bool mmap_drop_after_copy = true;
  std::ostream* notice = nullptr;  // where one-line notices (fallbacks) go; null = std::cerr
};

// kind: "uring" (alias "io_uring"), "pread" or "mmap". When io_uring cannot be set up the
// uring kind falls back to pread and prints one line saying so; a filesystem without O_DIRECT
// gets one line too (reads then use the page cache, outside any budget). Throws
// std::invalid_argument for an unknown kind and std::runtime_error when the file cannot be opened.
std::unique_ptr<ExpertReader> make_reader(std::string_view kind, const FileSource& src,
                                          const ReaderOptions& opts = {});

}  // namespace moe
