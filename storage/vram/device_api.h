// What the VRAM tier needs from a GPU, and nothing more: device memory for expert slots,
// pinned host memory for staging, and one copy stream of host->device copies whose completion
// is observed through tickets (CUDA: an event recorded after each cudaMemcpyAsync).
//
// The tier never includes CUDA headers: it talks to a DeviceMemory and a CopyEngine. The CUDA
// implementation is runtime/gpu/cuda_device.h (CudaDevice, next to the rest of the CUDA host
// code), built only with MOE_WITH_CUDA;
// tests use FakeDevice (fake_device.h), whose copies complete when the test
// advances its virtual clock.
#pragma once
#include <cstdint>

namespace moe {

// A device address, opaque to the host (CUDA: the pointer from cudaMalloc). 0 is null.
using DeviceAddr = uint64_t;

// Identifies one enqueued copy. Tickets increase in enqueue order; 0 means "no copy pending"
// (the data is already on the device).
using CopyTicket = uint64_t;

class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;
  virtual uint64_t total_bytes() const = 0;
  virtual uint64_t free_bytes() const = 0;
  // Throws std::runtime_error (one line: what was asked, what is free) when it cannot.
  virtual DeviceAddr allocate(uint64_t bytes) = 0;
  virtual void free(DeviceAddr addr) = 0;
  // Page-locked host memory (cudaHostAlloc): the only memory a copy engine reads at full
  // speed and truly asynchronously. Throws std::runtime_error when it cannot.
  virtual void* allocate_pinned(uint64_t bytes) = 0;
  virtual void free_pinned(void* p) = 0;
};

// One stream of host->device copies, executed in enqueue order (a hardware copy engine is
// FIFO: a queued copy cannot be reordered once enqueued, which is why the tier keeps its own
// queue of prefetches and hands the engine only a bounded amount at a time).
class CopyEngine {
 public:
  virtual ~CopyEngine() = default;
  // Enqueues a copy of `bytes` from `src` (pinned host memory that must stay untouched until
  // the ticket is done) to `dst`, returns at once.
  virtual CopyTicket copy_to_device(DeviceAddr dst, const void* src, uint64_t bytes) = 0;
  virtual bool done(CopyTicket t) = 0;  // non-blocking query (cudaEventQuery)
  // Blocks the host until the copy is done (cudaEventSynchronize).
  virtual void wait(CopyTicket t) = 0;
  // Makes work enqueued on `stream` (a cudaStream_t; nullptr: the default stream) after this
  // call wait for the copy, without blocking the host (cudaStreamWaitEvent). The default,
  // for engines without device streams (FakeDevice), blocks the host: wait(t).
  virtual void stream_wait(CopyTicket t, void* stream) {
    (void)stream;
    wait(t);
  }
  // Device-measured seconds the finished copy took from start to end (cudaEventElapsedTime
  // between events recorded before and after it): what start-up calibration fits.
  virtual double elapsed_s(CopyTicket t) = 0;
};

}  // namespace moe
