// Raw read bandwidth of a file's disk through the uring reader with O_DIRECT, for
// `moe bench --io-only`: the ceiling that misses of the RAM tier are paid against.
#pragma once
#include <cstdint>
#include <filesystem>

namespace moe {

struct DiskBandwidthOptions {
  // 1 MiB reads in flight in the sequential pass: the expert reader's depth (UringOptions), so
  // the figure is what decode's reads can draw. 8 read 1.5-2.5 GB/s where 64 read 2.2-2.8
  // (Zen 4 VM, alternating runs).
  unsigned seq_queue_depth = 64;
  uint64_t seq_block = 1 << 20;
  unsigned rand_queue_depth = 64;    // 4 KiB reads in flight, random pass
  bool random_pass = true;           // the 4 KiB random pass
  // Expert-sized reads: batches of extents_per_batch reads of extent_bytes each at random aligned
  // offsets (0: no such pass). Whole records at random places, the reads of an offloaded model
  // under uniform routing, read at half the sequential rate on the Zen 4 VM's disk.
  uint64_t extent_bytes = 0;
  unsigned extents_per_batch = 8;
};

struct DiskBandwidth {
  double seq_bytes_per_s = 0;   // sequential 1 MiB reads, wrapping around the file
  double rand_bytes_per_s = 0;  // uniformly random 4 KiB-aligned 4 KiB reads
  double rand_iops = 0;
  double extent_bytes_per_s = 0;  // the expert-sized pass (0 when not run)
  uint64_t seq_bytes = 0, rand_reads = 0, extent_bytes = 0;
  // False when the filesystem refused O_DIRECT: the figures then include the page cache and
  // say little about the disk.
  bool direct = false;
};

// Spends about `seconds`, shared equally by the passes it runs (sequential; expert-sized, with
// extent_bytes; random). The file should be larger than the device's cache to mean anything; a
// pack file is. Throws std::runtime_error naming the file
// when it is shorter than 4 KiB or cannot be read, and UringUnavailable without io_uring.
DiskBandwidth measure_disk_bandwidth(const std::filesystem::path& path, double seconds,
                                     const DiskBandwidthOptions& opts = {});

}  // namespace moe
