#include "storage/io/uring_reader.h"

#include <liburing.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace moe {

struct UringReader::Ring {
  io_uring ring{};
  bool fixed_files = false;       // the two descriptors are registered: slot 0 direct, 1 buffered
  std::vector<iovec> fixed_bufs;  // registered buffers, index = buf_index
};

namespace {

// A piece of a request in flight: advanced in place on short reads.
struct Piece {
  uint64_t offset, length;
  uint8_t* dst;
  uint32_t request;  // index into the caller's requests
};

}  // namespace

UringReader::UringReader(const FileSource& src, const UringOptions& opts)
    : file_(src, opts.direct), opts_(opts), ring_(std::make_unique<Ring>()) {
  opts_.queue_depth = std::clamp(opts_.queue_depth, 1u, 4096u);
  opts_.chunk_bytes = opts_.chunk_bytes == 0 ? (1ull << 30) : align_up(std::min<uint64_t>(opts_.chunk_bytes, 1ull << 30));
  const int ret = opts.simulate_init_errno ? -opts.simulate_init_errno : io_uring_queue_init(opts_.queue_depth, &ring_->ring, 0);
  if (ret < 0)
    throw UringUnavailable(-ret, fmt::format("io_uring_queue_init failed: {} (errno {})", std::strerror(-ret), -ret));
  // IORING_OP_READ arrived in 5.6; older rings would fail every read with EINVAL.
  io_uring_probe* probe = io_uring_get_probe_ring(&ring_->ring);
  const bool has_read = probe && io_uring_opcode_supported(probe, IORING_OP_READ);
  if (probe) io_uring_free_probe(probe);
  if (!has_read) {
    io_uring_queue_exit(&ring_->ring);
    throw UringUnavailable(EOPNOTSUPP, "io_uring has no IORING_OP_READ (kernel older than 5.6)");
  }
  // Fixed files save a file-table lookup per read; optional.
  const int fds[2] = {file_.direct() ? file_.direct_fd() : file_.buffered_fd(), file_.buffered_fd()};
  ring_->fixed_files = io_uring_register_files(&ring_->ring, fds, 2) == 0;
}

UringReader::~UringReader() { io_uring_queue_exit(&ring_->ring); }

bool UringReader::register_buffers(std::span<const iovec> buffers) {
  std::lock_guard lk(mu_);
  if (!ring_->fixed_bufs.empty()) {
    io_uring_unregister_buffers(&ring_->ring);
    ring_->fixed_bufs.clear();
  }
  if (buffers.empty()) return true;
  if (io_uring_register_buffers(&ring_->ring, buffers.data(), unsigned(buffers.size())) != 0) return false;
  ring_->fixed_bufs.assign(buffers.begin(), buffers.end());
  return true;
}

void UringReader::read(std::span<const ReadRequest> requests, const ReadDone& done) {
  std::vector<Piece> pieces;
  std::vector<uint32_t> left(requests.size(), 0);  // pieces of each request not yet landed
  for (size_t i = 0; i < requests.size(); ++i) {
    const ReadRequest& r = requests[i];
    file_.check_range(r.offset, r.length);
    for (uint64_t off = 0; off < r.length; off += opts_.chunk_bytes, ++left[i])
      pieces.push_back({r.offset + off, std::min(opts_.chunk_bytes, r.length - off), r.dst + off, uint32_t(i)});
  }
  if (done)
    for (size_t i = 0; i < requests.size(); ++i)
      if (!left[i]) done(i);  // nothing to read
  std::vector<uint8_t> failed(requests.size(), 0);
  auto landed = [&](const Piece& p) {
    if (--left[p.request] == 0 && !failed[p.request] && done) done(p.request);
  };
  std::lock_guard lk(mu_);
  io_uring* ring = &ring_->ring;
  std::vector<uint32_t> todo;  // piece indices to (re)submit, taken from the back
  todo.reserve(pieces.size());
  for (size_t i = pieces.size(); i-- > 0;) todo.push_back(uint32_t(i));
  unsigned inflight = 0;
  std::string error;  // first failure; reported once everything in flight has landed

  auto prep = [&](uint32_t i) {
    const Piece& p = pieces[i];
    io_uring_sqe* sqe = io_uring_get_sqe(ring);  // never null: inflight < queue_depth == SQ size
    const int fd = file_.fd_for(p.offset, p.length, p.dst);
    const bool direct = file_.direct() && fd == file_.direct_fd();
    const int target = ring_->fixed_files ? (direct ? 0 : 1) : fd;
    int buf_index = -1;
    if (direct)
      for (size_t b = 0; b < ring_->fixed_bufs.size(); ++b) {
        const auto* base = static_cast<const uint8_t*>(ring_->fixed_bufs[b].iov_base);
        if (p.dst >= base && p.dst + p.length <= base + ring_->fixed_bufs[b].iov_len) buf_index = int(b);
      }
    if (buf_index >= 0) io_uring_prep_read_fixed(sqe, target, p.dst, unsigned(p.length), p.offset, buf_index);
    else io_uring_prep_read(sqe, target, p.dst, unsigned(p.length), p.offset);
    if (ring_->fixed_files) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, i);
  };

  while (inflight > 0 || (!todo.empty() && error.empty())) {
    // Batched submission: fill every free slot, then one syscall submits them and waits.
    while (error.empty() && !todo.empty() && inflight < opts_.queue_depth) {
      prep(todo.back());
      todo.pop_back();
      ++inflight;
    }
    const int sret = io_uring_submit_and_wait(ring, 1);
    if (sret < 0 && sret != -EINTR && sret != -EAGAIN && sret != -EBUSY) {
      // The ring itself failed: nothing more will complete, so stop here.
      throw std::runtime_error(fmt::format("{}: io_uring_submit failed: {} (errno {})", file_.path().string(),
                                           std::strerror(-sret), -sret));
    }
    // Reap every completion available, then advance the CQ once.
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring, head, cqe) {
      ++seen;
      --inflight;
      const uint32_t i = uint32_t(io_uring_cqe_get_data64(cqe));
      Piece& p = pieces[i];
      const int res = cqe->res;
      if (res == -EAGAIN || res == -EINTR) {
        todo.push_back(i);
      } else if (res < 0) {
        if (error.empty()) error = file_.read_error(p.offset, p.length, -res);
        failed[p.request] = 1;
      } else if (uint64_t(res) < p.length) {
        // Short read: at the end of the file the rest is padding (check_range allowed it);
        // elsewhere resubmit the remainder (an unaligned remainder goes to the buffered fd).
        p.offset += uint64_t(res);
        p.dst += res;
        p.length -= uint64_t(res);
        if (p.offset >= file_.size()) {
          std::memset(p.dst, 0, p.length);
          landed(p);
        } else if (res == 0) {
          if (error.empty()) error = file_.truncated_error(p.offset);
          failed[p.request] = 1;
        } else {
          todo.push_back(i);
        }
      } else {
        landed(p);
      }
    }
    io_uring_cq_advance(ring, seen);
  }
  if (!error.empty()) throw std::runtime_error(error);
}

}  // namespace moe
