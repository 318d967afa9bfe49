#include "runtime/gpu/graph_cache.h"

#include <cstdio>
#include <exception>
#include <string>

#include "kernels/cuda/check.h"

namespace moe::gpu {

GraphCache::~GraphCache() {
  for (Slot& s : slots_)
    if (s.exec) cudaGraphExecDestroy(s.exec);  // no throw from a destructor
}

bool GraphCache::run(size_t slot, const std::vector<const void*>& key, const std::function<void()>& body) {
  if (failed_) {
    body();
    return false;
  }
  if (slot >= slots_.size()) slots_.resize(slot + 1);
  Slot& s = slots_[slot];
  if (s.exec && key == s.key) {
    MOE_CUDA_CHECK(cudaGraphLaunch(s.exec, stream_));
    return true;
  }
  if (key != s.warm) {  // a new key runs once as it is: every buffer and plan has grown by then
    body();
    s.warm = key;
    return false;
  }
  cudaGraph_t g = nullptr;
  MOE_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  std::string why;
  try {
    body();
  } catch (const std::exception& e) {
    why = e.what();
  }
  const cudaError_t end = cudaStreamEndCapture(stream_, &g);
  cudaGraphExec_t exec = nullptr;
  if (why.empty() && end != cudaSuccess) why = cudaGetErrorString(end);
  if (why.empty()) {
    const cudaError_t inst = cudaGraphInstantiate(&exec, g, 0);
    if (inst != cudaSuccess) why = cudaGetErrorString(inst), exec = nullptr;
  }
  if (g) cudaGraphDestroy(g);
  cudaGetLastError();  // a failed capture's error is not the next call's
  if (!why.empty()) {
    // Nothing ran while capturing: the work runs as it is, and so does all later work.
    std::fprintf(stderr, "moe: CUDA graph capture failed (%s); running without graphs\n", why.c_str());
    failed_ = true;
    body();
    return false;
  }
  if (s.exec) cudaGraphExecDestroy(s.exec);
  s.exec = exec;
  s.key = key;
  MOE_CUDA_CHECK(cudaGraphLaunch(s.exec, stream_));
  return true;
}

}  // namespace moe::gpu
