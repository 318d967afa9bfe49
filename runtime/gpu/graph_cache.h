// Captured CUDA graphs of recurring work on one stream, by slot (the GPU engine: slot 0 a whole
// decode step, slot 1 + l layer l's attention-and-routing segment). A slot's graph is replayed
// while its key, the shape and every device address the work bakes into kernel arguments, is
// the one it was captured with. A key seen the first time runs as it is (buffers and plans grow
// then); the second time it is captured and launched. Replays compute exactly what the launches
// would: same kernels, same arguments.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <functional>
#include <vector>

namespace moe::gpu {

class GraphCache {
 public:
  explicit GraphCache(cudaStream_t stream) : stream_(stream) {}
  ~GraphCache();
  GraphCache(const GraphCache&) = delete;
  GraphCache& operator=(const GraphCache&) = delete;

  // Runs body's work on the stream, from slot's graph when possible. Returns whether it was a
  // graph launch. body must only queue work on the stream (no synchronisation, no allocation
  // once warm). A capture that fails (body throws, or CUDA refuses) prints one line, turns
  // graphs off for good (failed()) and runs body as it is.
  bool run(size_t slot, const std::vector<const void*>& key, const std::function<void()>& body);
  bool failed() const { return failed_; }

 private:
  struct Slot {
    cudaGraphExec_t exec = nullptr;
    std::vector<const void*> key;   // what exec was captured with
    std::vector<const void*> warm;  // the last key run as it is
  };
  cudaStream_t stream_;
  std::vector<Slot> slots_;
  bool failed_ = false;
};

}  // namespace moe::gpu
