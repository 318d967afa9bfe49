// The engine of a session (internal to session/): the CPU engine, or the GPU engine with its
// VRAM slots under a budget (given, or planned from free VRAM). Everything CUDA-specific of the
// session is behind this interface, compiled only with MOE_WITH_CUDA.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "runtime/engine_api.h"
#include "runtime/model.h"
#include "session/session_options.h"
#include "session/session_stats.h"

namespace moe {

class TieredExperts;
class VramTier;

struct BuiltEngine {
  std::unique_ptr<InferenceEngine> engine;
  // The GPU's expert slots when they do not hold every expert: where prefetches go.
  VramTier* partial_vram = nullptr;
  // GPU only (empty on the CPU): its figures, their reset, and a PCIe measurement.
  std::function<GpuReport()> report;
  std::function<void()> reset_stats;
  std::function<std::pair<double, double>()> measure_link;  // bytes/s, latency s
};

// `ram`: the pack's RAM tier when model.experts is one (the GPU copies its records directly).
// `vram_budget` replaces d.vram_budget. Throws std::invalid_argument for --device cuda in a
// build without CUDA or on a machine without a device, and for GPU-only options on the CPU.
std::string describe_cuda_devices();  // declared for callers in session/session.h

BuiltEngine build_engine(const Model& m, const DeviceOptions& d, const std::string& vram_budget, const std::string& policy,
                         TieredExperts* ram, bool verbose);

}  // namespace moe
