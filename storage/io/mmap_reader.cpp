#include "storage/io/mmap_reader.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace moe {

MmapReader::MmapReader(const FileSource& src, bool drop_after_copy)
    : map_(src), drop_after_copy_(drop_after_copy) {}

void MmapReader::read(std::span<const ReadRequest> requests, const ReadDone& done) {
  const uint64_t size = map_.size();
  // Copying from pages a truncation removed raises SIGBUS: check the file first (one fstat).
  struct stat st {};
  if (::fstat(map_.fd(), &st) == 0 && uint64_t(st.st_size) < size)
    throw std::runtime_error(fmt::format("{}: the file has {} bytes although it had {} when opened: it was truncated "
                                         "while in use; do not modify a model file while moe runs (write a new one "
                                         "and rename it)", map_.path().string(), uint64_t(st.st_size), size));
  for (size_t i = 0; i < requests.size(); ++i) {
    const ReadRequest& r = requests[i];
    if (r.offset + r.length < r.offset || r.offset + r.length > align_up(size))
      throw std::runtime_error(fmt::format("{}: read of {} bytes at offset {} goes past the end of the file ({} bytes); "
                                           "the file is truncated or does not match its index",
                                           map_.path().string(), r.length, r.offset, size));
    // Touching the mapping past EOF's page raises SIGBUS: copy what exists, zero the padding.
    const uint64_t avail = r.offset >= size ? 0 : std::min(r.length, size - r.offset);
    if (avail) std::memcpy(r.dst, map_.data() + r.offset, avail);
    std::memset(r.dst + avail, 0, r.length - avail);
    if (drop_after_copy_ && avail) {
      // Only whole pages inside the request: a neighbour's bytes on a shared page stay mapped.
      const uint64_t first = align_up(r.offset), last = (r.offset + avail) / kDirectAlign * kDirectAlign;
      if (last > first) ::madvise(const_cast<uint8_t*>(map_.data()) + first, last - first, MADV_DONTNEED);
    }
    if (done) done(i);
  }
}

}  // namespace moe
