#include "runtime/gpu/cuda_device.h"

#include <cuda_runtime_api.h>

#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>

#include "kernels/cuda/check.h"

namespace moe {

namespace {

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
cudaEvent_t as_event(void* e) { return static_cast<cudaEvent_t>(e); }

std::string mib(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / double(1 << 20));
  return buf;
}

// Destructors cannot throw: a failure there is printed, not lost.
void check_quiet(cudaError_t err, const char* what) {
  if (err != cudaSuccess) std::fprintf(stderr, "cuda device: %s: %s\n", what, cudaGetErrorString(err));
}

}  // namespace

CudaDevice::CudaDevice(int device) : device_(device) {
  MOE_CUDA_CHECK(cudaSetDevice(device));
  cudaStream_t s = nullptr;
  MOE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  stream_ = s;
  events_.reserve(kEventRing);
}

CudaDevice::~CudaDevice() {
  check_quiet(cudaStreamSynchronize(as_stream(stream_)), "cudaStreamSynchronize (copy stream)");
  for (EventPair& p : events_) {
    check_quiet(cudaEventDestroy(as_event(p.start)), "cudaEventDestroy");
    check_quiet(cudaEventDestroy(as_event(p.end)), "cudaEventDestroy");
  }
  check_quiet(cudaStreamDestroy(as_stream(stream_)), "cudaStreamDestroy");
}

uint64_t CudaDevice::total_bytes() const {
  size_t free_b = 0, total_b = 0;
  MOE_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return total_b;
}

uint64_t CudaDevice::free_bytes() const {
  size_t free_b = 0, total_b = 0;
  MOE_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return free_b;
}

DeviceAddr CudaDevice::allocate(uint64_t bytes) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky; clear it
    throw std::runtime_error("cuda device: cannot allocate " + mib(bytes) + ": " + mib(free_bytes()) + " free of " +
                             mib(total_bytes()));
  }
  MOE_CUDA_CHECK(err);
  return reinterpret_cast<DeviceAddr>(p);
}

void CudaDevice::free(DeviceAddr addr) { MOE_CUDA_CHECK(cudaFree(reinterpret_cast<void*>(addr))); }

void* CudaDevice::allocate_pinned(uint64_t bytes) {
  void* p = nullptr;
  const cudaError_t err = cudaMallocHost(&p, bytes);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    throw std::runtime_error("cuda device: cannot allocate " + mib(bytes) + " of pinned host memory (cudaMallocHost)");
  }
  MOE_CUDA_CHECK(err);
  return p;
}

void CudaDevice::free_pinned(void* p) { MOE_CUDA_CHECK(cudaFreeHost(p)); }

const CudaDevice::EventPair* CudaDevice::pair_of(CopyTicket t) const {
  if (t > last_) throw std::out_of_range("cuda device: unknown copy ticket " + std::to_string(t));
  const EventPair& p = events_[(t - 1) % kEventRing];
  return p.ticket == t ? &p : nullptr;
}

CopyTicket CudaDevice::copy_to_device(DeviceAddr dst, const void* src, uint64_t bytes) {
  std::lock_guard lk(mu_);
  MOE_CUDA_CHECK(cudaSetDevice(device_));  // the prefetch scheduler's thread copies too
  const CopyTicket t = last_ + 1;
  const size_t i = (t - 1) % kEventRing;
  if (i == events_.size()) {
    cudaEvent_t a = nullptr, b = nullptr;
    MOE_CUDA_CHECK(cudaEventCreate(&a));
    MOE_CUDA_CHECK(cudaEventCreate(&b));
    events_.push_back({a, b, 0});
  }
  EventPair& p = events_[i];
  // The copy that held this pair is kEventRing copies back; it must be over before the
  // events are re-recorded (else its done/wait would see the new copy).
  if (p.ticket != 0) MOE_CUDA_CHECK(cudaEventSynchronize(as_event(p.end)));
  const cudaStream_t s = as_stream(stream_);
  MOE_CUDA_CHECK(cudaEventRecord(as_event(p.start), s));
  MOE_CUDA_CHECK(cudaMemcpyAsync(reinterpret_cast<void*>(dst), src, bytes, cudaMemcpyHostToDevice, s));
  MOE_CUDA_CHECK(cudaEventRecord(as_event(p.end), s));
  p.ticket = t;
  last_ = t;
  return t;
}

bool CudaDevice::done(CopyTicket t) {
  if (t == 0) return true;
  std::lock_guard lk(mu_);
  const EventPair* p = pair_of(t);
  if (!p) return true;
  const cudaError_t err = cudaEventQuery(as_event(p->end));
  if (err == cudaErrorNotReady) return false;
  MOE_CUDA_CHECK(err);
  return true;
}

void CudaDevice::wait(CopyTicket t) {
  if (t == 0) return;
  cudaEvent_t e = nullptr;
  {
    std::lock_guard lk(mu_);
    const EventPair* p = pair_of(t);
    if (!p) return;
    e = as_event(p->end);
  }
  // Without the lock: copies may be enqueued meanwhile. Should the pair be re-recorded before
  // this call reads it (kEventRing copies later), the host waits for a later copy of the same
  // FIFO stream: longer, never too short.
  MOE_CUDA_CHECK(cudaEventSynchronize(e));
}

void CudaDevice::stream_wait(CopyTicket t, void* stream) {
  if (t == 0) return;
  std::lock_guard lk(mu_);
  const EventPair* p = pair_of(t);
  if (!p) return;
  MOE_CUDA_CHECK(cudaStreamWaitEvent(as_stream(stream), as_event(p->end), 0));
}

double CudaDevice::elapsed_s(CopyTicket t) {
  std::lock_guard lk(mu_);
  if (t == 0) throw std::out_of_range("cuda device: elapsed_s of ticket 0 (no copy)");
  const EventPair* p = pair_of(t);
  if (!p)
    throw std::out_of_range("cuda device: elapsed_s of copy " + std::to_string(t) + ", older than the last " +
                            std::to_string(kEventRing) + " copies");
  const cudaError_t q = cudaEventQuery(as_event(p->end));
  if (q == cudaErrorNotReady)
    throw std::logic_error("cuda device: elapsed_s of copy " + std::to_string(t) + " before it is done");
  MOE_CUDA_CHECK(q);
  float ms = 0;
  MOE_CUDA_CHECK(cudaEventElapsedTime(&ms, as_event(p->start), as_event(p->end)));
  return double(ms) * 1e-3;
}

std::shared_ptr<const HostPinner> cuda_host_pinner(int device) {
  auto p = std::make_shared<HostPinner>();
  p->pin = [device](void* ptr, size_t bytes) {
    cudaError_t err = cudaSetDevice(device);
    if (err == cudaSuccess) err = cudaHostRegister(ptr, bytes, cudaHostRegisterPortable);
    if (err == cudaSuccess) return true;
    cudaGetLastError();  // not sticky; the buffer just stays pageable
    static std::once_flag logged;
    std::call_once(logged, [&] {
      std::fprintf(stderr, "warning: cannot page-lock RAM tier buffers (%s); GPU copies from them are staged\n",
                   cudaGetErrorString(err));
    });
    return false;
  };
  p->unpin = [](void* ptr, size_t) { cudaHostUnregister(ptr); };  // at exit the context may be gone: ignore
  return p;
}

}  // namespace moe
