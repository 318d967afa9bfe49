// Internal state of the CUDA emulator shared by its .cpp files.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "moe_cuda_emu.h"

struct CUstream_st {
  unsigned flags = 0;
  bool capturing = false;
  bool invalidated = false;           // an illegal call during capture
  std::vector<std::function<void()>> captured;
};
struct CUgraph_st {
  std::vector<std::function<void()>> work;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> work;
};
struct CUevent_st {
  double ms = 0;  // host time of the last completed record
};

namespace emu {

// One lock for everything: work runs on the calling host thread, one call at a time.
std::recursive_mutex& big_lock();

// The error cudaGetLastError returns next; a failed kernel (deadlock) sets a sticky one.
void set_error(cudaError_t e);
cudaError_t sticky_error();
void set_sticky(cudaError_t e, const std::string& why);

// Device allocations (start -> bytes) and page-locked host ranges.
enum class Mem { Host, Device, Pinned };
Mem classify(const void* p, size_t bytes);

}  // namespace emu
