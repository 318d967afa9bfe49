// Raw read bandwidth of a file's disk through the uring reader with O_DIRECT, for
// `moe bench --io-only`: the ceiling that misses of the RAM tier are paid against.
#pragma once
#include <cstdint>
#include <filesystem>

namespace moe {

struct DiskBandwidthOptions {
  unsigned seq_queue_depth = 8;      // 1 MiB reads in flight, sequential pass
  uint64_t seq_block = 1 << 20;
  unsigned rand_queue_depth = 64;    // 4 KiB reads in flight, random pass
};

struct DiskBandwidth {
  double seq_bytes_per_s = 0;   // sequential 1 MiB reads, wrapping around the file
  double rand_bytes_per_s = 0;  // uniformly random 4 KiB-aligned 4 KiB reads
  double rand_iops = 0;
  uint64_t seq_bytes = 0, rand_reads = 0;
  // False when the filesystem refused O_DIRECT: the figures then include the page cache and
  // say little about the disk.
  bool direct = false;
};

// Spends about `seconds` (half sequential, half random). The file should be larger than the
// device's cache to mean anything; a pack file is. Throws std::runtime_error naming the file
// when it is shorter than 4 KiB or cannot be read, and UringUnavailable without io_uring.
DiskBandwidth measure_disk_bandwidth(const std::filesystem::path& path, double seconds,
                                     const DiskBandwidthOptions& opts = {});

}  // namespace moe
