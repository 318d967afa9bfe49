// The process's resident memory from /proc/self/status, to check the RAM tier's bound
// (RSS <= budget + dense weights + KV + fixed overhead) in tests and `--stats`.
#pragma once
#include <cstdint>

namespace moe {

struct ProcessMemory {
  uint64_t rss_bytes = 0;       // VmRSS: resident now (anonymous + file-backed mapped pages)
  uint64_t peak_rss_bytes = 0;  // VmHWM: the high-water mark
};

// Throws std::runtime_error when /proc/self/status cannot be read (not Linux).
ProcessMemory read_process_memory();

// MemAvailable of /proc/meminfo: what new allocations can take without swapping or the OOM
// killer (memory-budget defaults). Throws std::runtime_error when it cannot be read.
uint64_t available_memory_bytes();

}  // namespace moe
