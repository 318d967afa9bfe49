// io_uring reader: O_DIRECT reads with many in flight, submitted in batches and reaped in
// batches, so one expert (split into chunks) or many experts keep the NVMe queue busy.
// Needs Linux >= 5.6 (IORING_OP_READ); when io_uring is missing or forbidden the constructor
// throws UringUnavailable and make_reader() falls back to pread.
#pragma once
#include <sys/uio.h>

#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <vector>

#include "storage/io/expert_reader.h"
#include "storage/io/file_handle.h"

namespace moe {

struct UringOptions {
  unsigned queue_depth = 64;       // reads in flight at most
  uint64_t chunk_bytes = 1 << 20;  // big requests are split so one expert uses several queue slots
  bool direct = true;              // O_DIRECT for aligned requests
  // Tests: pretend io_uring_queue_init failed with this errno (e.g. ENOSYS) to exercise fallback.
  int simulate_init_errno = 0;
};

// io_uring cannot be used here (old kernel, seccomp, ring memory limits).
class UringUnavailable : public std::runtime_error {
 public:
  UringUnavailable(int err, const std::string& what) : std::runtime_error(what), err_(err) {}
  int error_number() const { return err_; }

 private:
  int err_;
};

class UringReader final : public ExpertReader {
 public:
  UringReader(const FileSource& src, const UringOptions& opts = {});
  ~UringReader() override;
  std::string_view kind() const override { return "uring"; }
  bool direct() const override { return file_.direct(); }
  const std::filesystem::path& path() const override { return file_.path(); }
  uint64_t file_size() const override { return file_.size(); }
  // Thread safe: one ring, so concurrent callers take turns (each batch still runs in parallel).
  using ExpertReader::read;
  void read(std::span<const ReadRequest> requests, const ReadDone& done) override;

  // Registers caller-owned buffers (which must outlive this reader or the next call) as fixed
  // buffers: aligned reads landing wholly inside one skip per-I/O page pinning, which matters
  // for small reads at high IOPS. Returns false when the kernel refuses (RLIMIT_MEMLOCK, more
  // than 1 GiB per buffer); reads then work as before.
  bool register_buffers(std::span<const iovec> buffers);

 private:
  struct Ring;
  FileHandle file_;
  UringOptions opts_;
  std::unique_ptr<Ring> ring_;
  std::mutex mu_;
};

}  // namespace moe
