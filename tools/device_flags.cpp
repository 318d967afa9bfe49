#include "tools/device_flags.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <cstdio>
#include <stdexcept>

#include "runtime/engine.h"
#include "runtime/pack_model.h"
#include "storage/vram/placement.h"
#include "storage/tier/budget.h"
#include "runtime/model.h"
#ifdef MOE_WITH_CUDA
#endif
#ifdef MOE_WITH_CUDA
#include "kernels/cuda/device.h"
#include "runtime/gpu/gpu_engine.h"
#endif

namespace moe::cli {

void add_device_flags(CLI::App* c, DeviceFlags& f) {
  c->add_option("--device", f.device, "cpu, or cuda (the whole forward pass on the GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  c->add_option("--vram-budget", f.vram_budget,
                "GPU bytes for expert slots: SIZE (e.g. 6GiB) or N% of all expert bytes (default: planned from free VRAM)");
  c->add_option("--gpu", f.gpu, "CUDA device index")->capture_default_str();
  c->add_flag("--exact", f.exact, "GPU: widen BF16/F16 weights to F32 so products see fp32 activations (as the CPU)");
  c->add_flag("--grouped,!--no-grouped", f.grouped,
              "GPU: a MoE layer's quantized experts as one grouped GEMV per projection, decode routed on the device "
              "(default; --no-grouped: one launch per expert and projection)");
  c->add_flag("--graphs,!--no-graphs", f.graphs,
              "GPU: replay decode steps as CUDA graphs, whole or (when the host must page experts in) layer by layer "
              "(default; --no-graphs: launch every kernel)");
  c->add_flag("--cpu-misses{auto}", f.cpu_misses,
              "GPU, partial --vram-budget: run a decode step's missed expert on the CPU when a start-up-calibrated cost "
              "model says that is sooner than copying it (the CPU rounds INT4 activations to int8: tokens may then "
              "depend on the budget). --cpu-misses=always sends every miss to the CPU (to measure that path)")
      ->check(CLI::IsMember({"off", "auto", "always"}));
}

namespace {

// Routed experts of the whole model.
uint64_t count_experts(const Model& m) {
  const std::vector<int> n = experts_per_layer(m);
  return uint64_t(std::accumulate(n.begin(), n.end(), int64_t(0)));
}

}  // namespace

#ifdef MOE_WITH_CUDA
namespace {

// Bytes the GPU engine will hold for `m` besides experts (matrices widened to F32 by the upload
// rule count 4 bytes an element).
ModelBytes gpu_model_bytes(const Model& m, const gpu::GpuEngineOptions& o, uint64_t record_bytes) {
  const ModelConfig& c = m.cfg;
  const gpu::Upload how = o.wide16 ? gpu::Upload::Wide16 : gpu::Upload::AsStored;
  ModelBytes b;
  for (const DenseTensor& t : dense_tensors(m))
    b.dense_bytes += uint64_t(gpu::uploads_as_f32(t.view.dtype, how) ? t.view.rows * t.view.cols * 4 : t.view.bytes());
  b.largest_expert = record_bytes;
  b.expert_bytes = count_experts(m) * record_bytes;
  b.top_k = std::max(1, c.router.top_k);
  b.kv_bytes_per_token = 2 * uint64_t(c.n_layers) * uint64_t(c.n_kv_heads) * uint64_t(c.head_dim) * 4;
  return b;
}

}  // namespace
#endif

EngineHandle make_engine(const Model& m, const DeviceFlags& f, int threads, const std::string& policy, bool verbose) {
  EngineHandle h;
  if (f.device == "cpu") {
    if (!f.vram_budget.empty()) throw std::invalid_argument("--vram-budget needs --device cuda");
    if (f.cpu_misses != "off") throw std::invalid_argument("--cpu-misses needs --device cuda (on the CPU every expert runs there)");
    h.engine = std::make_unique<Engine>(m, EngineOptions{threads, 0});
    return h;
  }
  if (f.device != "cuda") throw std::invalid_argument(fmt::format("--device {}: give cpu or cuda", f.device));
#ifdef MOE_WITH_CUDA
  if (cuda::device_count() == 0)
    throw std::invalid_argument("--device cuda: no CUDA device is visible (" + cuda::describe_devices() +
                                "); run with --device cpu");
  gpu::GpuEngineOptions o;
  o.device = f.gpu;
  o.policy = policy;
  o.wide16 = f.exact;
  o.grouped_experts = f.grouped;
  o.cpu_misses = f.cpu_misses != "off";
  if (f.cpu_misses == "always") {
    // A link of one byte a second: the cost model sends every miss to the CPU.
    MissCalibration always;
    always.link_bytes_per_s = 1.0;
    always.activation_bytes = uint64_t(m.cfg.hidden) * sizeof(float);
    o.miss_calibration = always;
  }
  o.cuda_graphs = f.graphs;
  o.cpu_threads = threads;
  const uint64_t record = gpu::expert_slot_bytes(m, o);
  ModelBytes mb = gpu_model_bytes(m, o, record);
  if (!f.vram_budget.empty()) {
    o.vram_budget_bytes = parse_vram_budget(f.vram_budget, mb.expert_bytes);
  } else if (mb.expert_bytes > 0) {
    MachineInfo mi = probe_host_memory();
    {
      CudaDevice probe(f.gpu);
      mi.vram_total = probe.total_bytes();
      mi.vram_free = probe.free_bytes();
    }
    PlacementFlags pf;
    const Placement p = plan_placement(mi, mb, pf);
    o.vram_budget_bytes = p.vram_budget;
    if (verbose) std::fprintf(stderr, "%s", format_plan(p, mi, mb, pf).c_str());
  }
  auto e = std::make_unique<gpu::GpuEngine>(m, o);
  if (e->model().experts && record > 0) {
    h.vram = &e->experts();
  }
  h.device_memory = &e->device();
  h.copy = &e->device();
  h.dense_device_bytes = uint64_t(e->dense_bytes());
  h.times = &e->step_times();
  h.device_routed = e->device_routed();
  if (e->cpu_misses()) {
    h.misses = &e->miss_counts();
    h.miss_calibration = e->miss_calibration();
  }
  h.engine = std::move(e);
  return h;
#else
  (void)threads, (void)policy, (void)verbose;
  throw std::invalid_argument("--device cuda: this build has no CUDA backend (rebuild with nvcc installed, MOE_CUDA=ON)");
#endif
}

LinkCalibration measure_pcie(const EngineHandle& h) {
  const uint64_t sizes[] = {4ull << 20, 16ull << 20, 64ull << 20};
  return measure_link(*h.device_memory, *h.copy, sizes, 3);
}

nlohmann::json gpu_json(const EngineHandle& h, const LinkCalibration& link, uint64_t tokens, double tok_s) {
  nlohmann::json j = {{"pcie_h2d_bytes_per_s", link.bytes_per_s}, {"pcie_latency_s", link.latency_s},
                      {"dense_device_bytes", h.dense_device_bytes}};
  if (h.times && tokens) {
    j["gpu_forward_ms_per_token"] = h.times->forward_s * 1e3 / double(tokens);
    j["gpu_sync_ms_per_token"] = h.times->sync_s * 1e3 / double(tokens);
    j["gpu_acquire_ms_per_token"] = h.times->acquire_s * 1e3 / double(tokens);
    j["gpu_graph_steps"] = h.times->graph_steps;
    j["gpu_graph_segments"] = h.times->graph_segments;
  }
  if (h.engine && h.engine->backend() == "cuda") j["gpu_device_routed"] = h.device_routed;
  if (h.misses) {
    const MissPathCounts& m = *h.misses;
    const MissCalibration& c = h.miss_calibration;
    j["cpu_misses"] = {{"waited", m.waited},
                       {"on_cpu", m.on_cpu},
                       {"tokens_waited", m.tokens_waited},
                       {"tokens_on_cpu", m.tokens_on_cpu},
                       {"cpu_share", m.cpu_share()},
                       {"calibration",
                        {{"link_bytes_per_s", c.link_bytes_per_s},
                         {"link_latency_s", c.link_latency_s},
                         {"cpu_fixed_s", c.cpu_fixed_s},
                         {"cpu_per_token_s", c.cpu_per_token_s}}}};
  }
  if (!h.vram) return j;
  const VramStats st = h.vram->stats();
  const uint64_t acquires = st.hits + st.inflight_hits + st.misses;
  const double copied = tokens ? double(st.bytes_copied) / double(tokens) : 0.0;
  const uint64_t all = count_experts(h.engine->model());
  j["vram_budget_bytes"] = h.vram->device_bytes();
  j["vram_slots"] = h.vram->slots();
  j["vram_budget_share"] = all ? double(h.vram->slots()) / double(all) : 1.0;
  j["vram_all_resident"] = h.vram->fully_resident();
  j["vram_hit_rate"] = acquires ? double(st.hits + st.inflight_hits) / double(acquires) : 1.0;
  j["vram_misses_per_token"] = tokens ? double(st.misses) / double(tokens) : 0.0;
  j["vram_copied_bytes_per_token"] = copied;
  j["vram_prefetch_copies"] = st.prefetch_copies;
  j["vram_prefetch_used"] = st.prefetch_used;
  j["vram_prefetch_wasted"] = st.prefetch_wasted;
  j["vram_copy_waits_per_token"] = tokens ? double(st.waits) / double(tokens) : 0.0;
  // Copies alone at the measured bandwidth: the rate decode cannot beat at this miss rate.
  j["pcie_bound_tok_s"] = copied > 0 && link.bytes_per_s > 0 ? link.bytes_per_s / copied : 0.0;
  j["pcie_bound_ratio"] = copied > 0 && link.bytes_per_s > 0 && tok_s > 0 ? (link.bytes_per_s / copied) / tok_s : 0.0;
  return j;
}

std::string format_gpu_stats(const EngineHandle& h, uint64_t tokens) {
  const nlohmann::json j = gpu_json(h, {}, tokens, 0.0);
  std::string out = fmt::format("gpu: dense weights {} on the device", format_bytes(h.dense_device_bytes));
  if (j.contains("gpu_forward_ms_per_token"))
    out += fmt::format(" | per token: forward {:.2f} ms, router sync {:.2f} ms, expert acquire {:.2f} ms",
                       j["gpu_forward_ms_per_token"].get<double>(), j["gpu_sync_ms_per_token"].get<double>(),
                       j["gpu_acquire_ms_per_token"].get<double>());
  if (j.contains("vram_hit_rate"))
    out += fmt::format(" | VRAM {} ({} slots), hit rate {:.3f}, copied {} per token, copy waits {:.2f} per token",
                       format_bytes(j["vram_budget_bytes"].get<uint64_t>()), j["vram_slots"].get<uint64_t>(),
                       j["vram_hit_rate"].get<double>(), format_bytes(uint64_t(j["vram_copied_bytes_per_token"].get<double>())),
                       j["vram_copy_waits_per_token"].get<double>());
  if (h.misses) {
    const MissCalibration& c = h.miss_calibration;
    out += fmt::format(" | {} (link {:.1f} GB/s + {:.0f} us, CPU expert {:.2f} ms + {:.2f} ms/token)",
                       format_miss_counts(*h.misses), c.link_bytes_per_s / 1e9, c.link_latency_s * 1e6,
                       c.cpu_fixed_s * 1e3, c.cpu_per_token_s * 1e3);
  }
  return out + "\n";
}

}  // namespace moe::cli
