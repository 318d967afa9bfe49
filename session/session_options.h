// What a Session is opened with: where experts live (RAM tier, I/O), which engine runs the
// model (CPU or CUDA, VRAM budget) and how experts are predicted and prefetched. Plain data:
// the CLI's flags fill it (tools/), the server and batch jobs will too.
#pragma once
#include <string>

namespace moe {

// A pack's experts in RAM. An HF directory ignores these: it is mmap'd whole.
struct StorageOptions {
  std::string io = "uring";         // uring | pread | mmap
  std::string ram_budget = "100%";  // a size (6GiB) or a % of the pack's expert bytes
  std::string policy = "lfu";       // eviction, of the RAM tier and the VRAM slots: lfu | lru | nextuse
  double prefetch_share = 0.25;     // of the RAM budget, for prefetched experts not yet used
  bool split_per_layer = false;     // an equal share of the RAM budget per MoE layer (else one pool)
};

struct DeviceOptions {
  std::string device = "cpu";      // cpu | cuda
  std::string vram_budget;         // SIZE or N% of the expert bytes; empty: planned from free VRAM
  std::string vram_limit;          // SIZE: plan as if the GPU had only this much (empty: its own size)
  int gpu = 0;                     // CUDA device index
  bool exact = false;              // widen 16-bit weights to f32 on the GPU (CPU parity)
  bool grouped = true;             // one grouped GEMV per projection, decode routed on the device
  std::string cpu_misses = "off";  // off | auto (cost model) | always (every miss on the CPU)
  bool graphs = true;              // replay decode steps as CUDA graphs
  bool prompt_tc = false;          // prompt chunks' quantized weights on tensor cores (bf16 products)
  bool gpu_phases = false;         // time decode steps' phases on the device (eager launches)
  int threads = 0;                 // CPU threads (0: the physical cores)
  std::string kv_dtype = "f32";    // f32 | bf16 | f16 | fp8: how the CPU engine stores K and V
};

struct PrefetchSettings {
  std::string mode = "auto";  // auto | off | gate | history | blend
  int lookahead = 2;          // MoE layers ahead
  int prefetch_k = 0;         // experts per predicted layer and token (0: top_k / 2 into RAM, top_k into VRAM)
  std::string inflight;       // most prefetch bytes in flight, a size (empty: top_k experts)
  double min_recall = -1;     // PrefetchOptions::min_recall
  bool stream_layer = true;   // PrefetchOptions::stream_layer
  std::string trace;          // routing trace (JSONL) written here; empty: none
};

struct SessionOptions {
  StorageOptions storage;
  DeviceOptions device;
  PrefetchSettings prefetch;
  bool verbose = false;       // print the VRAM placement plan (stderr) when it was planned
  bool start_engine = true;   // false: no engine until Session::restart_engine (benchmarks)
};

}  // namespace moe
