// DeviceMemory + CopyEngine on a real CUDA device (built only with MOE_WITH_CUDA, library
// moe_vram_cuda). No CUDA header here: the tier and its callers stay CUDA-free.
//
// Memory: slots are cudaMalloc, staging is cudaMallocHost (page-locked), free/total come
// from cudaMemGetInfo. Copies: one dedicated copy stream (cudaStreamNonBlocking, so it never
// serialises with the legacy default stream); copy_to_device records a start event, issues
// cudaMemcpyAsync host->device and records an end event on it. The end event is the ticket:
// done = cudaEventQuery, wait = cudaEventSynchronize, stream_wait = cudaStreamWaitEvent (the
// compute stream waits, the host does not), elapsed_s = cudaEventElapsedTime(start, end).
//
// Events are pooled: ticket t uses pair (t - 1) % kEventRing, created on first use and
// re-recorded afterwards (never one cudaEventCreate per copy). Before a pair is reused the
// copy that held it is synchronised (only possible with kEventRing copies in flight, which a
// tier with a few staging buffers never has). A ticket older than the ring is known done:
// done() is true, wait() and stream_wait() return at once, elapsed_s() throws.
//
// Every CUDA call is checked (MOE_CUDA_CHECK: std::runtime_error naming the call); allocation
// failures are one line with what was asked and what is free. Thread safe (one mutex; the host
// blocks in wait() with it released).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "storage/io/aligned_buffer.h"
#include "storage/vram/device_api.h"

namespace moe {

class CudaDevice final : public DeviceMemory, public CopyEngine {
 public:
  static constexpr size_t kEventRing = 256;

  // Makes `device` current (cudaSetDevice) and creates the copy stream. Throws
  // std::runtime_error when there is no such device.
  explicit CudaDevice(int device = 0);
  ~CudaDevice() override;  // synchronises the copy stream, destroys events and stream
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  // DeviceMemory
  uint64_t total_bytes() const override;
  uint64_t free_bytes() const override;
  DeviceAddr allocate(uint64_t bytes) override;
  void free(DeviceAddr addr) override;
  void* allocate_pinned(uint64_t bytes) override;
  void free_pinned(void* p) override;

  // CopyEngine. Throws std::out_of_range for a ticket never issued.
  CopyTicket copy_to_device(DeviceAddr dst, const void* src, uint64_t bytes) override;
  bool done(CopyTicket t) override;
  void wait(CopyTicket t) override;
  void stream_wait(CopyTicket t, void* stream) override;  // stream: a cudaStream_t (nullptr: legacy default)
  double elapsed_s(CopyTicket t) override;                 // std::logic_error before the copy is done

  void* copy_stream() const { return stream_; }  // the cudaStream_t copies run on
  int device() const { return device_; }

 private:
  struct EventPair {
    void* start = nullptr;  // cudaEvent_t
    void* end = nullptr;
    CopyTicket ticket = 0;  // the copy that last recorded them
  };
  // Under mu_: the pair holding t, or nullptr when t is older than the ring (done long ago).
  const EventPair* pair_of(CopyTicket t) const;

  int device_ = 0;
  void* stream_ = nullptr;  // cudaStream_t
  mutable std::mutex mu_;
  std::vector<EventPair> events_;  // grows to kEventRing
  CopyTicket last_ = 0;            // tickets issued: 1..last_
};

// Page-locks host buffers for this process's CUDA devices (cudaHostRegister, portable to every
// device; cudaHostUnregister before they are unmapped), making `device` current first on
// whatever thread pins (the prefetch scheduler's too). A buffer the driver refuses to register
// stays pageable (copies from it stay correct, staged by CUDA); the first refusal is logged once.
std::shared_ptr<const HostPinner> cuda_host_pinner(int device);

}  // namespace moe
