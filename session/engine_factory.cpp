#include "session/engine_factory.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <stdexcept>

#include "runtime/engine.h"
#include "runtime/pack_model.h"
#include "storage/tier/budget.h"
#ifdef MOE_WITH_CUDA
#include "kernels/cuda/device.h"
#include "runtime/gpu/gpu_engine.h"
#include "storage/vram/miss_calibration.h"
#include "storage/vram/placement.h"
#endif

namespace moe {

#ifdef MOE_WITH_CUDA
namespace {

uint64_t count_experts(const Model& m) {
  const std::vector<int> n = experts_per_layer(m);
  return uint64_t(std::accumulate(n.begin(), n.end(), int64_t(0)));
}

// Bytes the GPU engine will hold for `m` besides experts, by the upload's own rule.
ModelBytes gpu_model_bytes(const Model& m, const gpu::GpuEngineOptions& o, uint64_t record_bytes) {
  const ModelConfig& c = m.cfg;
  const gpu::Upload how = o.wide16 ? gpu::Upload::Wide16 : gpu::Upload::AsStored;
  ModelBytes b;
  for (const DenseTensor& t : dense_tensors(m)) b.dense_bytes += gpu::upload_bytes(t, c, how);
  b.largest_expert = record_bytes;
  b.expert_bytes = count_experts(m) * record_bytes;
  b.top_k = std::max(1, c.router.top_k);
  b.kv_bytes_per_token = uint64_t(c.kv_bytes_per_token());
  b.dense_bytes += gpu::mla_absorbed_bytes(c);  // W_UK^T and W_UV in fp32
  return b;
}

gpu::GpuEngineOptions gpu_options(const Model& m, const DeviceOptions& d, const std::string& policy, TieredExperts* ram) {
  gpu::GpuEngineOptions o;
  o.device = d.gpu;
  o.policy = policy;
  o.wide16 = d.exact;
  o.grouped_experts = d.grouped;
  o.cpu_misses = d.cpu_misses != "off";
  o.ram_tier = ram;
  if (d.cpu_misses == "always") {
    // A link of one byte a second: the cost model sends every miss to the CPU.
    MissCalibration always;
    always.link_bytes_per_s = 1.0;
    always.activation_bytes = uint64_t(m.cfg.hidden) * sizeof(float);
    o.miss_calibration = always;
  }
  o.cuda_graphs = d.graphs;
  o.tensor_core_prompts = d.prompt_tc;
  o.phase_profile = d.gpu_phases;
  o.cpu_threads = d.threads;
  return o;
}

// The slots' budget: `flag`'s (--vram-budget), or planned from the machine (printed when
// `verbose`); under a --vram-limit always planned, so the flag's budget is checked against it.
// `record`: one expert's slot bytes (gpu::expert_slot_bytes).
uint64_t vram_budget_bytes(const Model& m, const gpu::GpuEngineOptions& o, uint64_t record, const std::string& flag,
                           const DeviceOptions& d, bool verbose) {
  const ModelBytes mb = gpu_model_bytes(m, o, record);
  if (!flag.empty() && d.vram_limit.empty()) return parse_vram_budget(flag, mb.expert_bytes);
  if (mb.expert_bytes == 0 && d.vram_limit.empty()) return 0;
  MachineInfo mi = probe_host_memory();
  {
    CudaDevice probe(d.gpu);
    mi.vram_total = probe.total_bytes();
    mi.vram_free = probe.free_bytes();
  }
  PlacementFlags pf;
  if (!flag.empty()) pf.vram_budget = flag;
  if (!d.vram_limit.empty()) pf.vram_limit = d.vram_limit;
  const Placement p = plan_placement(mi, mb, pf);
  if (verbose) std::fprintf(stderr, "%s", format_plan(p, mi, mb, pf).c_str());
  return p.vram_budget;
}

GpuReport report_of(gpu::GpuEngine& e) {
  GpuReport r;
  r.dense_device_bytes = uint64_t(e.dense_bytes());
  r.times = e.step_times();
  r.device_routed = e.device_routed();
  if (e.model().experts && first_moe_layer(e.model()) >= 0) {
    const VramTier& t = e.experts();
    const VramStats st = t.stats();
    VramReport v;
    v.budget_bytes = t.device_bytes();
    v.slots = t.slots();
    v.all_experts = count_experts(e.model());
    v.all_resident = t.fully_resident();
    v.hits = st.hits, v.inflight_hits = st.inflight_hits, v.misses = st.misses, v.bytes_copied = st.bytes_copied;
    v.prefetch_copies = st.prefetch_copies, v.prefetch_used = st.prefetch_used, v.prefetch_wasted = st.prefetch_wasted;
    v.waits = st.waits;
    r.vram = v;
  }
  if (e.cpu_misses()) {
    const MissPathCounts& m = e.miss_counts();
    const MissCalibration& c = e.miss_calibration();
    r.misses = MissReport{m.waited,           m.on_cpu,           m.tokens_waited, m.tokens_on_cpu,
                          c.link_bytes_per_s, c.link_latency_s, c.cpu_fixed_s,   c.cpu_per_token_s};
  }
  return r;
}

BuiltEngine build_gpu_engine(const Model& m, const DeviceOptions& d, const std::string& budget, const std::string& policy,
                             TieredExperts* ram, bool verbose) {
  if (cuda::device_count() == 0)
    throw std::invalid_argument("--device cuda: no CUDA device is visible (" + cuda::describe_devices() +
                                "); run with --device cpu");
  gpu::GpuEngineOptions o = gpu_options(m, d, policy, ram);
  const uint64_t record = gpu::expert_slot_bytes(m, o);
  o.vram_budget_bytes = vram_budget_bytes(m, o, record, budget, d, verbose);
  auto e = std::make_unique<gpu::GpuEngine>(m, o);
  gpu::GpuEngine* g = e.get();
  BuiltEngine b;
  const bool experts = m.experts && first_moe_layer(m) >= 0 && record > 0;
  if (experts && !g->experts().fully_resident()) b.partial_vram = &g->experts();
  b.report = [g] { return report_of(*g); };
  b.reset_stats = [g, experts] {
    if (experts) g->experts().reset_stats();
    g->step_times() = {};
    if (g->cpu_misses()) g->miss_counts() = {};
  };
  b.measure_link = [g] {
    const uint64_t sizes[] = {4ull << 20, 16ull << 20, 64ull << 20};
    const LinkCalibration l = measure_link(g->device(), g->device(), sizes, 3);
    return std::pair{l.bytes_per_s, l.latency_s};
  };
  b.engine = std::move(e);
  return b;
}

}  // namespace
#endif

std::string describe_cuda_devices() {
#ifdef MOE_WITH_CUDA
  return cuda::describe_devices();
#else
  return "not built (configure with -DMOE_CUDA=ON)";
#endif
}

DType parse_kv_dtype(const std::string& s) {
  if (s == "f32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  if (s == "f16") return DType::F16;
  if (s == "fp8") return DType::F8E4M3;
  throw std::invalid_argument(fmt::format("--kv-dtype {}: choose f32, bf16, f16 or fp8", s));
}

BuiltEngine build_engine(const Model& m, const DeviceOptions& d, const std::string& vram_budget, const std::string& policy,
                         TieredExperts* ram, bool verbose) {
  const DType kv = parse_kv_dtype(d.kv_dtype);
  if (d.device == "cpu") {
    if (!vram_budget.empty()) throw std::invalid_argument("--vram-budget needs --device cuda");
    if (!d.vram_limit.empty()) throw std::invalid_argument("--vram-limit needs --device cuda");
    if (d.cpu_misses != "off")
      throw std::invalid_argument("--cpu-misses needs --device cuda (on the CPU every expert runs there)");
    BuiltEngine b;
    EngineOptions eo{d.threads, 0};
    eo.kv_dtype = kv;
    b.engine = std::make_unique<Engine>(m, eo);
    return b;
  }
  if (d.device != "cuda") throw std::invalid_argument(fmt::format("--device {}: give cpu or cuda", d.device));
  if (kv != DType::F32)
    throw std::invalid_argument(fmt::format("--kv-dtype {}: the GPU engine keeps an fp32 KV cache for now; drop the flag "
                                            "or run on the CPU", d.kv_dtype));
#ifdef MOE_WITH_CUDA
  return build_gpu_engine(m, d, vram_budget, policy, ram, verbose);
#else
  (void)ram, (void)policy, (void)verbose;
  throw std::invalid_argument("--device cuda: this build has no CUDA backend (rebuild with nvcc installed, MOE_CUDA=ON)");
#endif
}

}  // namespace moe
