// --device cpu|cuda and --vram-budget, shared by moe run and moe bench: which engine runs the
// model, and (on the GPU) how many bytes of expert slots it gets. With no --vram-budget the
// plan comes from the machine (storage/vram/placement.h) and is printed.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/engine_api.h"
#include "runtime/gpu/step_times.h"
#include "storage/vram/device_api.h"
#include "storage/vram/miss_calibration.h"
#include "storage/vram/miss_cost.h"
#include "storage/vram/vram_tier.h"

namespace moe::cli {

struct DeviceFlags {
  std::string device = "cpu";  // cpu | cuda
  std::string vram_budget;     // SIZE or N% of the expert bytes; empty: planned from free VRAM
  int gpu = 0;                 // CUDA device index
  bool exact = false;          // GpuEngineOptions::wide16
  bool grouped = true;         // GpuEngineOptions::grouped_experts
  std::string cpu_misses = "off";  // off | auto (GpuEngineOptions::cpu_misses) | always (forced)
  bool graphs = true;          // GpuEngineOptions::cuda_graphs
};

void add_device_flags(CLI::App* c, DeviceFlags& f);

// An engine and, on the GPU, what the caller may report on: the expert slots and the device.
struct EngineHandle {
  std::unique_ptr<InferenceEngine> engine;
  VramTier* vram = nullptr;             // null on the CPU
  DeviceMemory* device_memory = nullptr;  // null on the CPU
  CopyEngine* copy = nullptr;             // null on the CPU
  uint64_t dense_device_bytes = 0;
  gpu::GpuStepTimes* times = nullptr;  // the GPU engine's step timing (null on the CPU)
  bool device_routed = false;          // decode experts planned on the device (no host round trip)
  MissPathCounts* misses = nullptr;    // --cpu-misses with a partial budget: each path's count
  MissCalibration miss_calibration;    // and the start-up measurements it decides with
};

// Throws std::invalid_argument for --device cuda in a build without CUDA, or an unknown device.
// `verbose`: print the placement plan (stderr) when the budget was planned.
EngineHandle make_engine(const Model& m, const DeviceFlags& f, int threads, const std::string& policy, bool verbose);

// Host -> device copies of 4 to 64 MiB from pinned memory, timed by the device (a line fit:
// bandwidth and latency).
LinkCalibration measure_pcie(const EngineHandle& h);

// The GPU figures of a timed decode of `tokens` tokens at `tok_s`: VRAM budget and slots,
// hit rate, bytes copied per token, copy waits, the measured PCIe bandwidth and the decode
// rate that bandwidth allows for those copies (pcie_bound_tok_s; 0 when nothing was copied).
nlohmann::json gpu_json(const EngineHandle& h, const LinkCalibration& link, uint64_t tokens, double tok_s);

// One line of gpu_json's figures for --stats (no PCIe measurement).
std::string format_gpu_stats(const EngineHandle& h, uint64_t tokens);

}  // namespace moe::cli
