#include "storage/io/pread_reader.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace moe {

PreadReader::PreadReader(const FileSource& src, bool direct) : file_(src, direct) {}

void PreadReader::read(std::span<const ReadRequest> requests, const ReadDone& on_done) {
  for (size_t i = 0; i < requests.size(); ++i) {
    const ReadRequest& r = requests[i];
    file_.check_range(r.offset, r.length);
    uint64_t done = 0;
    while (done < r.length) {
      const uint64_t off = r.offset + done, len = r.length - done;
      // The remainder of a short O_DIRECT read can be unaligned: fd_for then picks the
      // buffered descriptor for it.
      const ssize_t n = ::pread(file_.fd_for(off, len, r.dst + done), r.dst + done, len, off_t(off));
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        throw std::runtime_error(file_.read_error(off, len, errno));
      }
      if (n == 0) {  // end of file: the rest is padding of the last block (check_range) ...
        if (off < file_.size()) throw std::runtime_error(file_.truncated_error(off));  // ... unless it shrank
        std::memset(r.dst + done, 0, len);
        break;
      }
      done += uint64_t(n);
    }
    if (on_done) on_done(i);
  }
}

}  // namespace moe
