#include "storage/io/make_reader.h"

#include <iostream>
#include <stdexcept>

#include <fmt/format.h>

#include "storage/io/mmap_reader.h"
#include "storage/io/pread_reader.h"

namespace moe {

namespace {

std::unique_ptr<ExpertReader> open_reader(std::string_view kind, const FileSource& path,
                                          const ReaderOptions& opts, std::ostream& notice) {
  if (kind == "pread") return std::make_unique<PreadReader>(path, opts.direct);
  if (kind == "mmap") return std::make_unique<MmapReader>(path, opts.mmap_drop_after_copy);
  if (kind == "uring" || kind == "io_uring") {
    UringOptions u = opts.uring;
    u.direct = opts.direct;
    try {
      return std::make_unique<UringReader>(path, u);
    } catch (const UringUnavailable& e) {
      // Old kernels (ENOSYS), seccomp'd containers (EPERM) and ring memory limits (ENOMEM)
      // still run, just with one read in flight.
      notice << "moe: io_uring unavailable (" << e.what() << "); falling back to --io pread\n";
      return std::make_unique<PreadReader>(path, opts.direct);
    }
  }
  throw std::invalid_argument(fmt::format("--io '{}': unknown reader; use uring, pread or mmap", kind));
}

}  // namespace

std::unique_ptr<ExpertReader> make_reader(std::string_view kind, const FileSource& src,
                                          const ReaderOptions& opts) {
  std::ostream& notice = opts.notice ? *opts.notice : std::cerr;
  auto reader = open_reader(kind, src, opts, notice);
  // Reads still work, but through the page cache, which no budget bounds: say so once.
  if (opts.direct && reader->kind() != "mmap" && !reader->direct())
    notice << "moe: " << src.path.string() << ": the filesystem refuses O_DIRECT; reading through the page cache "
           << "(not bounded by --ram-budget)\n";
  return reader;
}

}  // namespace moe
