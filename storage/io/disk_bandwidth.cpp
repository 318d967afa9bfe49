#include "storage/io/disk_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "storage/io/aligned_buffer.h"
#include "storage/io/uring_reader.h"

namespace moe {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

DiskBandwidth measure_disk_bandwidth(const std::filesystem::path& path, double seconds, const DiskBandwidthOptions& opts) {
  UringOptions uo;
  uo.queue_depth = std::max(opts.seq_queue_depth, opts.rand_queue_depth);
  uo.chunk_bytes = opts.seq_block;
  UringReader reader(path, uo);
  const uint64_t blocks = reader.file_size() / kDirectAlign;  // whole 4 KiB blocks only
  if (blocks == 0) throw std::runtime_error(fmt::format("{}: too small to measure disk bandwidth (under 4 KiB)", path.string()));
  DiskBandwidth out;
  out.direct = reader.direct();

  // One buffer for both passes, registered so the 4 KiB reads skip per-I/O page pinning.
  const uint64_t seq_block = std::min<uint64_t>(align_up(opts.seq_block), blocks * kDirectAlign);
  const unsigned slots = std::max<unsigned>(opts.rand_queue_depth * 4, 1);
  AlignedBuffer buf(std::max<uint64_t>(seq_block * opts.seq_queue_depth, uint64_t(slots) * kDirectAlign));
  const iovec iov{buf.data(), buf.size()};
  reader.register_buffers({&iov, 1});

  // Sequential: batches of queue-depth blocks, wrapping at the end of the file.
  std::vector<ReadRequest> reqs;
  uint64_t pos = 0;
  const auto t_seq = Clock::now();
  while (since(t_seq) < seconds / 2) {
    reqs.clear();
    for (unsigned i = 0; i < opts.seq_queue_depth; ++i) {
      if (pos + seq_block > blocks * kDirectAlign) pos = 0;
      reqs.push_back({pos, seq_block, buf.data() + uint64_t(i) * seq_block});
      pos += seq_block;
    }
    reader.read(reqs);
    out.seq_bytes += seq_block * reqs.size();
  }
  out.seq_bytes_per_s = double(out.seq_bytes) / since(t_seq);

  // Random: big batches so the reader's sliding window keeps rand_queue_depth reads in flight.
  std::mt19937_64 rng(1234);
  std::uniform_int_distribution<uint64_t> block(0, blocks - 1);
  const auto t_rand = Clock::now();
  while (since(t_rand) < seconds / 2) {
    reqs.clear();
    for (unsigned i = 0; i < slots * 4; ++i)
      reqs.push_back({block(rng) * kDirectAlign, kDirectAlign, buf.data() + uint64_t(i % slots) * kDirectAlign});
    reader.read(reqs);
    out.rand_reads += reqs.size();
  }
  const double t = since(t_rand);
  out.rand_iops = double(out.rand_reads) / t;
  out.rand_bytes_per_s = out.rand_iops * double(kDirectAlign);
  reader.register_buffers({});
  return out;
}

}  // namespace moe
