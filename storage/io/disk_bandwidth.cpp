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
  const unsigned seq_slots = std::max<unsigned>(opts.seq_queue_depth, 1);
  const unsigned slots = std::max<unsigned>(opts.rand_queue_depth * 4, 1);
  AlignedBuffer buf(std::max<uint64_t>(seq_block * seq_slots, uint64_t(slots) * kDirectAlign));
  const iovec iov{buf.data(), buf.size()};
  reader.register_buffers({&iov, 1});

  // Sequential: batches of 8 x queue-depth blocks, so the reader's sliding window keeps
  // queue-depth reads in flight, as it does for a layer's expert reads (batches of exactly
  // queue-depth blocks let the queue drain at each batch's tail). Buffers are reused by reads in
  // flight: only the bytes moved count.
  // Fresh places on every call: a VM's host may cache what the previous probe read, and the same
  // offsets then read at cache speed (a repeat of one seed's expert-sized pass read 2.7 GB/s
  // against 1.5 the first time).
  std::mt19937_64 rng(std::random_device{}());
  std::vector<ReadRequest> reqs;
  uint64_t pos = std::uniform_int_distribution<uint64_t>(0, blocks - 1)(rng) / (seq_block / kDirectAlign) * seq_block;
  const uint64_t extent = std::min<uint64_t>(align_up(opts.extent_bytes), blocks * kDirectAlign);
  const double pass_seconds = seconds / (1 + (extent > 0) + opts.random_pass);
  const auto t_seq = Clock::now();
  while (since(t_seq) < pass_seconds) {
    reqs.clear();
    for (unsigned i = 0; i < 8 * seq_slots; ++i) {
      if (pos + seq_block > blocks * kDirectAlign) pos = 0;
      reqs.push_back({pos, seq_block, buf.data() + uint64_t(i % seq_slots) * seq_block});
      pos += seq_block;
    }
    reader.read(reqs);
    out.seq_bytes += seq_block * reqs.size();
  }
  out.seq_bytes_per_s = double(out.seq_bytes) / since(t_seq);

  if (extent > 0) {
    // Every read of a batch lands in one buffer: only the bytes moved count.
    AlignedBuffer ebuf(extent);
    std::uniform_int_distribution<uint64_t> at(0, blocks - extent / kDirectAlign);
    const auto t_ext = Clock::now();
    while (since(t_ext) < pass_seconds) {
      reqs.clear();
      for (unsigned i = 0; i < std::max(opts.extents_per_batch, 1u); ++i)
        reqs.push_back({at(rng) * kDirectAlign, extent, ebuf.data()});
      reader.read(reqs);
      out.extent_bytes += extent * reqs.size();
    }
    out.extent_bytes_per_s = double(out.extent_bytes) / since(t_ext);
  }
  if (!opts.random_pass) {
    reader.register_buffers({});
    return out;
  }
  // Random: big batches so the reader's sliding window keeps rand_queue_depth reads in flight.
  std::uniform_int_distribution<uint64_t> block(0, blocks - 1);
  const auto t_rand = Clock::now();
  while (since(t_rand) < pass_seconds) {
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
