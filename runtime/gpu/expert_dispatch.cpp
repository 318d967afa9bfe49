#include "runtime/gpu/expert_dispatch.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <utility>

#include "kernels/cpu/ops.h"
#include "storage/tier/budget.h"
#include "storage/vram/expert_record.h"
#include "storage/vram/miss_calibration.h"
#include "storage/vram/record_source.h"
#include "storage/vram/tier_record_source.h"

namespace moe::gpu {
namespace {

cuda::DeviceWeight device_weight(const WeightView& shape, const void* base, const RecordPiece& p) {
  const WeightView v = record_view(shape, base, p);
  return cuda::DeviceWeight{v.dtype, v.data, v.rows, v.cols, v.scales, v.zeros, v.group};
}

// Gate, up and down of the expert record at `addr` in a VRAM slot.
SlotWeights slot_weights(const ExpertRecords& r, DeviceAddr addr) {
  const void* base = reinterpret_cast<const void*>(addr);
  const ExpertRecordLayout& lay = r.layout();
  const ExpertWeights& sh = r.shape();
  return {device_weight(sh.gate, base, lay.gate), device_weight(sh.up, base, lay.up),
          device_weight(sh.down, base, lay.down)};
}

cuda::GroupedDesc desc_of(const cuda::DeviceWeight& w) {
  return {static_cast<const uint8_t*>(w.data), w.scales, w.zeros};
}

bool groupable(const WeightView& w) {
  return w.dtype == DType::Q4 || w.dtype == DType::Q4Z || w.dtype == DType::MXFP4 ||
         (w.dtype == DType::F8E4M3 && w.cols % 16 == 0);
}

}  // namespace

bool uses_direct_records(const Model& m, const GpuEngineOptions& o) {
  // Direct copies keep a record pinned in the RAM tier while it crosses the link: only when the
  // RAM budget holds every expert (the default, 100%), so those pins never lack room.
  const TieredExperts* ram = o.ram_tier;
  return ram && ram == m.experts.get() && o.direct_ram && !o.wide16 &&
         ram->budget_bytes() >= total_expert_bytes(ram->catalog());
}

uint64_t expert_slot_bytes(const Model& m, const GpuEngineOptions& o) {
  const int first = first_moe_layer(m);
  if (first < 0 || !m.experts) return 0;
  if (uses_direct_records(m, o)) return o.ram_tier->catalog().record(first, 0).raw_bytes;
  return RecordSource(*m.experts, experts_per_layer(m), o.wide16).layout().bytes;
}

ExpertDispatch::ExpertDispatch(const Model& m, const GpuEngineOptions& o, CudaDevice& dev, cudaStream_t stream,
                               GpuStepTimes& times)
    : model_(m), dev_(dev), stream_(stream), times_(times), n_experts_(std::max(1, m.cfg.router.n_experts)) {
  const ModelConfig& c = m.cfg;
  if (uses_direct_records(m, o)) {
    records_ = std::make_unique<TierRecordSource>(*o.ram_tier);
    // The RAM tier's buffers page-locked as they are handed out, so copies from them are
    // asynchronous DMA (they stay pinned after this engine: the tier outlives it).
    o.ram_tier->set_pinner(cuda_host_pinner(o.device));
  } else {
    records_ = std::make_unique<RecordSource>(*m.experts, experts_per_layer(m), o.wide16);
  }
  VramOptions vo;
  // No budget: every expert (the tier never makes more slots than there are experts).
  vo.budget_bytes = o.vram_budget_bytes > 0 ? o.vram_budget_bytes : std::numeric_limits<uint64_t>::max();
  vo.top_k = c.router.top_k;
  vo.policy = make_policy(o.policy);
  vo.prefetch_share = o.prefetch_share;
  tier_ = std::make_unique<VramTier>(*records_, dev_, dev_, std::move(vo));
  defer_release_ = tier_->fully_resident() || tier_->slots() >= 2 * size_t(c.router.top_k);
  const ExpertWeights& sh = records_->shape();
  grouped_ = o.grouped_experts && groupable(sh.gate) && groupable(sh.up) && groupable(sh.down);
  if (grouped_ && tier_->fully_resident()) build_device_tables();
  // Decode steps that route through the host (a partial budget, or hooks) use it too.
  if (grouped_) {
    step_table_ = cuda::DeviceBuffer<cuda::GroupedDesc>(size_t(3) * size_t(n_experts_));
    host_tab_.ensure(step_table_.bytes());
  }
  if (o.cpu_misses && !tier_->fully_resident()) {
    cpu_pool_ = std::make_unique<ThreadPool>(o.cpu_threads);
    calib_ = o.miss_calibration ? *o.miss_calibration : calibrate_misses();
  }
}

void ExpertDispatch::build_device_tables() {
  const int E = n_experts_, L = model_.cfg.n_layers;
  const std::vector<int> per_layer = experts_per_layer(model_);
  std::vector<cuda::GroupedDesc> host(size_t(L) * 3 * size_t(E), cuda::GroupedDesc{nullptr, nullptr, nullptr});
  table_shape_.assign(size_t(L), {});
  for (int l = 0; l < L; ++l) {
    for (int e = 0; e < per_layer[size_t(l)]; ++e) {
      const SlotWeights w = slot_weights(*records_, tier_->acquire(l, e).addr);  // resident: a table lookup, no copy
      for (size_t p = 0; p < 3; ++p) host[(size_t(l) * 3 + p) * size_t(E) + size_t(e)] = desc_of(w[p]);
      if (e == 0) table_shape_[size_t(l)] = w;
      tier_->release(l, e);
    }
  }
  tables_ = cuda::DeviceBuffer<cuda::GroupedDesc>(host.size());
  tables_.upload(host.data(), host.size());
}

ExpertTable ExpertDispatch::device_table(int layer) const {
  return {tables_.get() + size_t(layer) * 3 * size_t(n_experts_), table_shape_[size_t(layer)]};
}

SlotWeights ExpertDispatch::acquire(int layer, int expert) {
  const Clock::time_point t0 = Clock::now();
  const VramExpert x = tier_->acquire(layer, expert);
  pending_release_.push_back({layer, expert});
  if (x.ticket) dev_.stream_wait(x.ticket, stream_);  // compute waits for this copy only
  times_.acquire_s += seconds_since(t0);
  return slot_weights(*records_, x.addr);
}

ExpertTable ExpertDispatch::stage(int layer, const MissSplit& split) {
  const size_t E = size_t(n_experts_);
  cuda::GroupedDesc* tab = host_tab_.as<cuda::GroupedDesc>();  // [gate, up, down][E]
  SlotWeights first{};
  for (size_t u = 0; u < split.gpu.size(); ++u) {
    const int e = split.gpu[u];
    const SlotWeights w = acquire(layer, e);
    for (size_t p = 0; p < 3; ++p) tab[p * E + size_t(e)] = desc_of(w[p]);
    if (u == 0) first = w;
  }
  for (const int e : split.cpu)
    for (size_t p = 0; p < 3; ++p) tab[p * E + size_t(e)] = desc_of(first[p]);
  MOE_CUDA_CHECK(cudaMemcpyAsync(step_table_.get(), tab, step_table_.bytes(), cudaMemcpyHostToDevice, stream_));
  return {step_table_.get(), first};
}

void ExpertDispatch::release_pending() {
  const auto pending = std::exchange(pending_release_, {});  // each released once, even if one throws
  for (auto [l, e] : pending) tier_->release(l, e);
}

MissSplit ExpertDispatch::split(int layer, std::span<const RoutedExpert> routed) {
  if (cpu_pool_) return split_misses(*tier_, layer, routed, calib_, miss_counts_);
  MissSplit s;
  for (const RoutedExpert& r : routed) s.gpu.push_back(r.expert);
  return s;
}

void ExpertDispatch::run_on_cpu(int layer, std::span<const int> experts, const std::vector<std::vector<int32_t>>& pairs,
                                int K, const float* h, float* y_host, float* y_dev) {
  // Started now, so later steps find them resident; never ahead of this step's demand copies.
  std::vector<ExpertKey> keys;
  for (const int e : experts) keys.push_back({layer, e});
  tier_->prefetch(keys);
  const int64_t H = model_.cfg.hidden, I = model_.cfg.moe_intermediate;
  std::vector<float> xin, out;
  for (const int e : experts) {
    const std::vector<int32_t>& rows = pairs[size_t(e)];
    const int64_t n = int64_t(rows.size());
    xin.resize(size_t(n * H));
    out.resize(size_t(n * H));
    for (int64_t r = 0; r < n; ++r) std::copy_n(h + int64_t(rows[size_t(r)] / K) * H, H, &xin[size_t(r * H)]);
    {
      const HeldExpert held(*model_.experts, layer, e);
      const ExpertWeights& w = held.weights();
      cpu::swiglu_ffn(*cpu_pool_, w.gate, w.up, w.down, n, I, xin.data(), out.data());
    }
    for (int64_t r = 0; r < n; ++r) {
      const int64_t i = rows[size_t(r)];
      std::copy_n(&out[size_t(r * H)], H, y_host + i * H);
      MOE_CUDA_CHECK(cudaMemcpyAsync(y_dev + i * H, y_host + i * H, size_t(H) * sizeof(float), cudaMemcpyHostToDevice,
                                     stream_));
    }
  }
}

MissCalibration ExpertDispatch::calibrate_misses() {
  MissCalibration m;
  // The link: pinned host -> device copies of 256 KiB .. 4 MiB (an expert record is ~1-10 MB).
  const uint64_t sizes[] = {uint64_t(256) << 10, uint64_t(1) << 20, uint64_t(4) << 20};
  const LinkCalibration link = measure_link(dev_, dev_, sizes);
  m.link_bytes_per_s = link.bytes_per_s;
  m.link_latency_s = link.latency_s;
  // The CPU: the first MoE layer's expert 0 over 1, 2, 4 and 8 tokens (random activations).
  const int64_t H = model_.cfg.hidden, I = model_.cfg.moe_intermediate;
  std::vector<float> x(size_t(8 * H)), y(size_t(8 * H));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 2654435761u) % 1000) / 500.0f - 1.0f;
  const HeldExpert held(*model_.experts, first_moe_layer(model_), 0);
  const ExpertWeights& w = held.weights();
  const auto run = [&](int n) { cpu::swiglu_ffn(*cpu_pool_, w.gate, w.up, w.down, n, I, x.data(), y.data()); };
  const auto now = [] { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); };
  const int tokens[] = {1, 2, 4, 8};
  const CpuExpertCalibration cpu_fit = measure_cpu_expert(run, tokens, now);
  m.cpu_fixed_s = cpu_fit.fixed_s;
  m.cpu_per_token_s = cpu_fit.per_token_s;
  m.activation_bytes = uint64_t(H) * sizeof(float);
  return m;
}

}  // namespace moe::gpu
