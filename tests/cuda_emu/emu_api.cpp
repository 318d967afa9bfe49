// The emulated CUDA runtime: errors, the device, memory (with the checks a GPU would make),
// streams, events and graphs. Work runs when issued unless its stream is being captured.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "emu_state.h"

namespace emu {
namespace {

thread_local cudaError_t g_last = cudaSuccess;
cudaError_t g_sticky = cudaSuccess;
CUstream_st g_default_stream;

std::map<uintptr_t, size_t>& device_allocs() {
  static std::map<uintptr_t, size_t> m;
  return m;
}
std::map<uintptr_t, size_t>& pinned() {
  static std::map<uintptr_t, size_t> m;
  return m;
}
size_t g_allocated = 0;

size_t total_memory() {
  static const size_t total = [] {
    const char* e = std::getenv("MOE_CUDA_EMU_MEMORY_GIB");
    return size_t(e ? std::atof(e) : 16.0) << 30;
  }();
  return total;
}

bool inside(const std::map<uintptr_t, size_t>& m, const void* p, size_t bytes) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  auto it = m.upper_bound(a);
  if (it == m.begin()) return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second + (it->second == 0);
}

CUstream_st* stream(cudaStream_t s) { return s ? s : &g_default_stream; }

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The streams this host thread is capturing: synchronous calls are refused meanwhile.
std::vector<CUstream_st*>& capturing_streams() {
  static thread_local std::vector<CUstream_st*> v;
  return v;
}
bool capturing_in_this_thread() { return !capturing_streams().empty(); }

// A call CUDA refuses while this thread captures: invalidates the captures and returns the error.
cudaError_t refuse_in_capture(const char* call) {
  std::fprintf(stderr, "cuda-emu: %s during stream capture: CUDA refuses it and invalidates the capture\n", call);
  for (CUstream_st* s : capturing_streams()) s->invalidated = true;
  return g_last = cudaErrorStreamCaptureUnsupported;
}

}  // namespace

std::recursive_mutex& big_lock() {
  static std::recursive_mutex m;
  return m;
}
void set_error(cudaError_t e) { g_last = e; }
cudaError_t sticky_error() { return g_sticky; }
void set_sticky(cudaError_t e, const std::string& why) {
  std::fprintf(stderr, "cuda-emu: %s\n", why.c_str());
  g_sticky = g_last = e;
}

Mem classify(const void* p, size_t bytes) {
  std::lock_guard lock(big_lock());
  if (inside(device_allocs(), p, bytes)) return Mem::Device;
  if (inside(pinned(), p, bytes)) return Mem::Pinned;
  return Mem::Host;
}

void enqueue(cudaStream_t s, std::function<void()> work) {
  std::lock_guard lock(big_lock());
  CUstream_st* st = stream(s);
  if (st->capturing) st->captured.push_back(std::move(work));
  else work();
}

}  // namespace emu

using emu::g_allocated;

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    default: return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulator: see its message above)";
    default: return cudaGetErrorName(e);
  }
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = emu::g_last;
  emu::g_last = emu::g_sticky;
  return e;
}
cudaError_t cudaPeekAtLastError() { return emu::g_last; }

cudaError_t cudaGetDeviceCount(int* n) { return *n = 1, cudaSuccess; }
cudaError_t cudaGetDevice(int* d) { return *d = 0, cudaSuccess; }
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : emu::g_last = cudaErrorInvalidDevice; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d != 0) return cudaErrorInvalidDevice;
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "CUDA emulator (tests/cuda_emu, H100-like limits)");
  p->totalGlobalMem = emu::total_memory();
  p->sharedMemPerBlock = 48 * 1024;
  p->sharedMemPerBlockOptin = 227 * 1024;
  p->sharedMemPerMultiprocessor = 228 * 1024;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647;
  p->maxGridSize[1] = p->maxGridSize[2] = 65535;
  p->multiProcessorCount = 132;
  p->major = 9;
  p->minor = 0;
  p->memoryBusWidth = 5120;
  p->l2CacheSize = 50 << 20;
  p->maxThreadsPerMultiProcessor = 2048;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  std::lock_guard lock(emu::big_lock());
  if (emu::capturing_in_this_thread()) return emu::refuse_in_capture("cudaDeviceSynchronize");
  return emu::g_sticky;
}
cudaError_t cudaDeviceReset() {
  std::lock_guard lock(emu::big_lock());
  emu::g_sticky = emu::g_last = cudaSuccess;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard lock(emu::big_lock());
  *total_bytes = emu::total_memory();
  *free_bytes = *total_bytes - std::min(*total_bytes, g_allocated);
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  std::lock_guard lock(emu::big_lock());
  *p = nullptr;
  if (emu::capturing_in_this_thread()) return emu::refuse_in_capture("cudaMalloc");
  if (g_allocated + bytes > emu::total_memory()) return emu::g_last = cudaErrorMemoryAllocation;
  const size_t n = std::max<size_t>(bytes, 1);
  void* m = std::aligned_alloc(256, (n + 255) / 256 * 256);
  if (!m) return emu::g_last = cudaErrorMemoryAllocation;
  // Unwritten device memory reads as NaN (0xFF bytes), so a kernel that reads it shows.
  std::memset(m, 0xFF, std::min<size_t>(n, size_t(256) << 20));
  emu::device_allocs()[reinterpret_cast<uintptr_t>(m)] = bytes;
  g_allocated += bytes;
  *p = m;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  std::lock_guard lock(emu::big_lock());
  if (!p) return cudaSuccess;
  auto& m = emu::device_allocs();
  const auto it = m.find(reinterpret_cast<uintptr_t>(p));
  if (it == m.end()) {
    std::fprintf(stderr, "cuda-emu: cudaFree of %p, which cudaMalloc did not return\n", p);
    return emu::g_last = cudaErrorInvalidValue;
  }
  g_allocated -= it->second;
  m.erase(it);
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
  std::lock_guard lock(emu::big_lock());
  *p = std::aligned_alloc(4096, (std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096);
  if (!*p) return emu::g_last = cudaErrorMemoryAllocation;
  emu::pinned()[reinterpret_cast<uintptr_t>(*p)] = bytes;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  std::lock_guard lock(emu::big_lock());
  if (!p) return cudaSuccess;
  if (!emu::pinned().erase(reinterpret_cast<uintptr_t>(p))) return emu::g_last = cudaErrorInvalidValue;
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaHostRegister(void* p, size_t bytes, unsigned) {
  std::lock_guard lock(emu::big_lock());
  if (!p || bytes == 0) return emu::g_last = cudaErrorInvalidValue;
  emu::pinned()[reinterpret_cast<uintptr_t>(p)] = bytes;
  return cudaSuccess;
}
cudaError_t cudaHostUnregister(void* p) {
  std::lock_guard lock(emu::big_lock());
  return emu::pinned().erase(reinterpret_cast<uintptr_t>(p)) ? cudaSuccess : emu::g_last = cudaErrorInvalidValue;
}

namespace {

// The direction a copy names must match where its pointers lie, as on a GPU without managed
// memory (a host pointer passed as device memory is the bug this catches).
cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, size_t src_bytes = SIZE_MAX) {
  if (src_bytes == SIZE_MAX) src_bytes = bytes;
  if (bytes == 0 || kind == cudaMemcpyDefault || kind == cudaMemcpyHostToHost) return cudaSuccess;
  const bool dst_dev = emu::classify(dst, bytes) == emu::Mem::Device;
  const bool src_dev = emu::classify(src, src_bytes) == emu::Mem::Device;
  const bool want_dst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool want_src = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dst_dev == want_dst && src_dev == want_src) return cudaSuccess;
  std::fprintf(stderr, "cuda-emu: cudaMemcpy kind %d of %zu bytes from %p (%s) to %p (%s)\n", int(kind), bytes, src,
               src_dev ? "device" : "not device memory", dst, dst_dev ? "device" : "not device memory");
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  std::lock_guard lock(emu::big_lock());
  if (emu::capturing_in_this_thread()) return emu::refuse_in_capture("cudaMemcpy");
  if (emu::g_sticky != cudaSuccess) return emu::g_sticky;
  if (const cudaError_t e = check_copy(dst, src, bytes, kind); e != cudaSuccess) return emu::g_last = e;
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  std::lock_guard lock(emu::big_lock());
  if (emu::g_sticky != cudaSuccess) return emu::g_sticky;
  if (const cudaError_t e = check_copy(dst, src, bytes, kind); e != cudaSuccess) return emu::g_last = e;
  emu::enqueue(s, [=] {
    if (bytes) std::memmove(dst, src, bytes);
  });
  return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s) {
  std::lock_guard lock(emu::big_lock());
  if (emu::g_sticky != cudaSuccess) return emu::g_sticky;
  if (width > dpitch || width > spitch) return emu::g_last = cudaErrorInvalidValue;
  if (height == 0 || width == 0) return cudaSuccess;
  const size_t dspan = dpitch * (height - 1) + width, sspan = spitch * (height - 1) + width;
  if (const cudaError_t e = check_copy(dst, src, dspan, kind, sspan); e != cudaSuccess) return emu::g_last = e;
  emu::enqueue(s, [=] {
    for (size_t r = 0; r < height; ++r)
      std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  });
  return cudaSuccess;
}
cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  std::lock_guard lock(emu::big_lock());
  if (emu::capturing_in_this_thread()) return emu::refuse_in_capture("cudaMemset");
  if (bytes && emu::classify(dst, bytes) != emu::Mem::Device) return emu::g_last = cudaErrorInvalidValue;
  if (bytes) std::memset(dst, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s) {
  std::lock_guard lock(emu::big_lock());
  if (bytes && emu::classify(dst, bytes) != emu::Mem::Device) return emu::g_last = cudaErrorInvalidValue;
  emu::enqueue(s, [=] {
    if (bytes) std::memset(dst, value, bytes);
  });
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return *s = new CUstream_st, cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  *s = new CUstream_st;
  (*s)->flags = flags;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::lock_guard lock(emu::big_lock());
  if (!s || s->capturing) return emu::g_last = cudaErrorInvalidResourceHandle;
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  std::lock_guard lock(emu::big_lock());
  if (emu::stream(s)->capturing) return emu::refuse_in_capture("cudaStreamSynchronize on the capturing stream");
  return emu::g_sticky;
}
cudaError_t cudaStreamQuery(cudaStream_t s) {
  std::lock_guard lock(emu::big_lock());
  if (emu::stream(s)->capturing) return emu::refuse_in_capture("cudaStreamQuery on the capturing stream");
  return emu::g_sticky;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t e, unsigned) {
  return e ? cudaSuccess : emu::g_last = cudaErrorInvalidResourceHandle;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  std::lock_guard lock(emu::big_lock());
  if (!s || s->capturing) return emu::g_last = cudaErrorInvalidValue;  // not the legacy stream, not twice
  s->capturing = true;
  s->invalidated = false;
  s->captured.clear();
  emu::capturing_streams().push_back(s);
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  std::lock_guard lock(emu::big_lock());
  *g = nullptr;
  if (!s || !s->capturing) return emu::g_last = cudaErrorInvalidValue;
  s->capturing = false;
  std::erase(emu::capturing_streams(), s);
  if (s->invalidated) {
    s->captured.clear();
    return emu::g_last = cudaErrorStreamCaptureInvalidated;
  }
  *g = new CUgraph_st{std::move(s->captured)};
  s->captured.clear();
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  *status = emu::stream(s)->capturing ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* e) { return *e = new CUevent_st, cudaSuccess; }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return *e = new CUevent_st, cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e) return emu::g_last = cudaErrorInvalidResourceHandle;
  emu::enqueue(s, [e] { e->ms = emu::now_ms(); });
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) { return e ? emu::g_sticky : cudaErrorInvalidResourceHandle; }
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e ? emu::g_sticky : cudaErrorInvalidResourceHandle; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (!a || !b) return cudaErrorInvalidResourceHandle;
  *ms = float(b->ms - a->ms);
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t g, unsigned long long) {
  if (!g) return emu::g_last = cudaErrorInvalidValue;
  *exec = new CUgraphExec_st{g->work};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (!exec) return emu::g_last = cudaErrorInvalidValue;
  std::lock_guard lock(emu::big_lock());
  if (emu::g_sticky != cudaSuccess) return emu::g_sticky;
  for (const auto& w : exec->work) emu::enqueue(s, w);
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
