// The routed experts of a MoE layer on the GPU engine, and its shared expert.
//
// Decode steps with quantized experts (moe_pairs): the device routes (cuda::router_topk) and
// every (token, expert) pair is one single-token item of a grouped GEMV per projection. With
// every expert resident the plan is written on the device from the routed ids and per-layer
// descriptor tables (set_pairs): no host round trip. Otherwise the ids come back, the host
// acquires the experts from the VRAM tier (or runs a miss on the CPU), writes their descriptors
// to the step table and runs the same device-planned pairs; past one chunk of top_k experts it
// plans the same single-token items on the host (set). The same kernel over the same items,
// so the budget never changes the numbers.
//
// Other steps (moe_general): the router's logits come back, the host routes with cpu::route,
// gathers each expert's rows and runs the experts chunk by chunk (top_k at a time).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

#include "kernels/cpu/ops.h"
#include "kernels/cuda/moe_ops.h"
#include "kernels/cuda/ops.h"
#include "runtime/gpu/gpu_engine.h"
#include "runtime/gpu/gpu_scratch.h"
#include "storage/vram/expert_record.h"
#include "storage/vram/miss_split.h"

namespace moe::gpu {
namespace {

cuda::DeviceWeight device_weight(const WeightView& shape, const void* base, const RecordPiece& p) {
  const WeightView v = record_view(shape, base, p);
  return cuda::DeviceWeight{v.dtype, v.data, v.rows, v.cols, v.scales, v.zeros, v.group};
}

// Gate, up and down of the expert record at `addr` in a VRAM slot.
std::array<cuda::DeviceWeight, 3> slot_weights(const ExpertRecords& r, DeviceAddr addr) {
  const void* base = reinterpret_cast<const void*>(addr);
  const ExpertRecordLayout& lay = r.layout();
  const ExpertWeights& sh = r.shape();
  return {device_weight(sh.gate, base, lay.gate), device_weight(sh.up, base, lay.up),
          device_weight(sh.down, base, lay.down)};
}

cuda::GroupedDesc desc_of(const cuda::DeviceWeight& w) {
  return {static_cast<const uint8_t*>(w.data), w.scales, w.zeros};
}

}  // namespace

void GpuEngine::build_device_tables() {
  const int E = model_.cfg.router.n_experts, L = model_.cfg.n_layers;
  const std::vector<int> per_layer = experts_per_layer(model_);
  std::vector<cuda::GroupedDesc> host(size_t(L) * 3 * size_t(E), cuda::GroupedDesc{nullptr, nullptr, nullptr});
  table_shape_.assign(size_t(L), {});
  for (int l = 0; l < L; ++l) {
    for (int e = 0; e < per_layer[size_t(l)]; ++e) {
      const auto w = slot_weights(*records_, tier_->acquire(l, e).addr);  // resident: a table lookup, no copy
      for (size_t p = 0; p < 3; ++p) host[(size_t(l) * 3 + p) * size_t(E) + size_t(e)] = desc_of(w[p]);
      if (e == 0) table_shape_[size_t(l)] = w;
      tier_->release(l, e);
    }
  }
  tables_ = cuda::DeviceBuffer<cuda::GroupedDesc>(host.size());
  tables_.upload(host.data(), host.size());
}

bool GpuEngine::routes_on_device(int layer, const BatchPlan& plan, bool decode) const {
  return decode && grouped_ok_ && opts_.grouped_experts && plan.tokens() <= kPairMaxTokens &&
         model_.layers[size_t(layer)].kind == FfnKind::Moe;
}

void GpuEngine::route_on_device(int layer, int64_t T) {
  const ModelConfig& c = model_.cfg;
  Scratch& s = *s_;
  const int64_t P = T * c.router.top_k;
  apply(weights_.layers[size_t(layer)].router, s.h.get(), T, s.router.get(), *gemm_, stream_);
  cuda::router_topk(s.router.get(), T, c.router.n_experts, c.router.top_k, c.router.norm_topk_prob,
                    s.dids.get() + layer * P, s.dwts.get() + layer * P, stream_);
}

void GpuEngine::moe(int layer, const BatchPlan& plan, bool decode) {
  if (routes_on_device(layer, plan, decode))
    moe_pairs(layer, plan);  // route_on_device(layer) has run
  else
    moe_general(layer, plan);
  shared_expert(layer, plan.tokens());
}

void GpuEngine::moe_pairs(int layer, const BatchPlan& plan) {
  const ModelConfig& c = model_.cfg;
  Scratch& s = *s_;
  const int E = c.router.n_experts, K = c.router.top_k;
  const int64_t T = plan.tokens(), H = c.hidden, P = T * K;
  int32_t* d_ids = s.dids.get() + layer * P;  // this layer's routing (route_on_device), kept for the observers
  float* d_wts = s.dwts.get() + layer * P;

  if (experts_on_device(plan, true)) {  // everything on the device
    pairs_on_device(layer, T, tables_.get() + size_t(layer) * 3 * size_t(E), table_shape_[size_t(layer)]);
    cuda::moe_combine(s.y.get(), s.iota.get(), d_wts, T, K, H, s.f.get(), stream_);
    return;
  }

  // The routing to the host (and h, for the hooks or the CPU). The sync also means every kernel
  // of the previous layer is done, so its experts' slots can be released now.
  int32_t* ids = s.host_route.as<int32_t>();
  float* wts = reinterpret_cast<float*>(ids + P);
  float* h = s.host_h.as<float>();
  const bool cpu = cpu_misses();  // only ever with a partial budget
  MOE_CUDA_CHECK(cudaMemcpyAsync(ids, d_ids, size_t(P) * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
  MOE_CUDA_CHECK(cudaMemcpyAsync(wts, d_wts, size_t(P) * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  float* x = s.host_x.as<float>();
  if (cpu || !hooks_.empty())
    MOE_CUDA_CHECK(cudaMemcpyAsync(h, s.h.get(), size_t(T * H) * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  if (!hooks_.empty())  // the residual too, in the same round trip
    MOE_CUDA_CHECK(cudaMemcpyAsync(x, s.x.get(), size_t(T * H) * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  sync();
  if (override_) {  // the changed routing back to the device, where the combine reads it
    override_(layer, int(T), K, ids, wts);
    for (int64_t i = 0; i < P; ++i)
      if (ids[i] < 0 || ids[i] >= E)
        throw std::invalid_argument(fmt::format("routing override: expert {} outside [0, {})", ids[i], E));
    MOE_CUDA_CHECK(cudaMemcpyAsync(d_ids, ids, size_t(P) * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
    MOE_CUDA_CHECK(cudaMemcpyAsync(d_wts, wts, size_t(P) * sizeof(float), cudaMemcpyHostToDevice, stream_));
  }
  if (!hooks_.empty()) {
    const RoutingEvent ev{layer, int(T), K, ids, wts, plan.seq.data(), plan.pos.data(), h, x};
    for (const auto& hook : hooks_) hook(ev);
  }
  const RoutingEvent seen{layer, int(T), K, ids, wts, plan.seq.data(), plan.pos.data(), nullptr, nullptr};
  for (const auto& observer : observers_) observer(seen);

  // Pairs by expert; a missed expert goes to the CPU when the cost model says that is sooner.
  std::vector<std::vector<int32_t>> pairs(static_cast<size_t>(E));
  for (int64_t i = 0; i < P; ++i) pairs[size_t(ids[i])].push_back(int32_t(i));
  std::vector<RoutedExpert> routed;
  for (int e = 0; e < E; ++e)
    if (!pairs[size_t(e)].empty()) routed.push_back({e, int(pairs[size_t(e)].size())});
  MissSplit split;
  if (cpu)
    split = split_misses(*tier_, layer, routed, calib_, miss_counts_);
  else
    for (const RoutedExpert& r : routed) split.gpu.push_back(r.expert);
  const std::vector<int>& on_gpu = split.gpu;
  const std::vector<int>& on_cpu = split.cpu;

  const bool defer = tier_->fully_resident() || tier_->slots() >= 2 * size_t(K);
  if (!on_gpu.empty() && on_gpu.size() <= size_t(K)) {
    // One chunk (every decode step of one token): the experts' descriptors go to the step table,
    // and the pairs run exactly as with every expert resident (the same plans and kernels).
    cuda::GroupedDesc* tab = s.host_tab.as<cuda::GroupedDesc>();  // [gate, up, down][E]
    std::array<cuda::DeviceWeight, 3> first{};
    const Clock::time_point ta = Clock::now();
    for (size_t u = 0; u < on_gpu.size(); ++u) {
      const int e = on_gpu[u];
      const VramExpert x = tier_->acquire(layer, e);
      pending_release_.push_back({layer, e});  // released at a sync even if this throws
      if (x.ticket) dev_->stream_wait(x.ticket, stream_);  // compute waits for this copy only
      const auto w = slot_weights(*records_, x.addr);
      for (size_t p = 0; p < 3; ++p) tab[p * size_t(E) + size_t(e)] = desc_of(w[p]);
      if (u == 0) first = w;
    }
    times_.acquire_s += seconds_since(ta);
    // The CPU's experts: any resident weights, so the GPU computes harmless rows that the
    // CPU's results replace (below, before the combine).
    for (const int e : on_cpu)
      for (size_t p = 0; p < 3; ++p) tab[p * size_t(E) + size_t(e)] = desc_of(first[p]);
    // The previous layer's upload from host_tab is done: the sync above covered it.
    MOE_CUDA_CHECK(cudaMemcpyAsync(step_table_.get(), tab, step_table_.bytes(), cudaMemcpyHostToDevice, stream_));
    const auto run = [&] { pairs_on_device(layer, T, step_table_.get(), first); };
    if (step_segments_)
      times_.graph_segments += graphs_->run(1 + size_t(c.n_layers) + size_t(layer), step_key_, run);
    else
      run();
    if (!defer) sync();
  }
  // Otherwise top_k experts at a time (a budget always holds that many): gate and up read h row
  // t into the chunk's rows of g / u, down writes pair i's row of y.
  int32_t row = 0;  // rows of g / u, consecutive over the chunks
  for (size_t c0 = 0; on_gpu.size() > size_t(K) && c0 < on_gpu.size(); c0 += size_t(K)) {
    const size_t c1 = std::min(on_gpu.size(), c0 + size_t(K));
    const int32_t r0 = row;
    for (auto& g : group_) g.clear();
    const Clock::time_point ta = Clock::now();
    for (size_t u = c0; u < c1; ++u) {
      const VramExpert x = tier_->acquire(layer, on_gpu[u]);
      pending_release_.push_back({layer, on_gpu[u]});  // released at a sync even if this throws
      if (x.ticket) dev_->stream_wait(x.ticket, stream_);  // compute waits for this copy only
      const auto w = slot_weights(*records_, x.addr);
      for (const int32_t i : pairs[size_t(on_gpu[u])]) {
        group_[0].push_back({w[0], {int32_t(i / K)}, {row}});
        group_[1].push_back({w[1], {int32_t(i / K)}, {row}});
        group_[2].push_back({w[2], {row}, {i}});
        ++row;
      }
    }
    times_.acquire_s += seconds_since(ta);
    grouped_swiglu(s.h.get(), T, row, r0, row, P);
    if (c1 != on_gpu.size() || !defer) sync();
  }
  if (!on_cpu.empty()) {
    // Started now, so later steps find them resident; never ahead of this step's demand copies.
    std::vector<ExpertKey> keys;
    for (int e : on_cpu) keys.push_back({layer, e});
    tier_->prefetch(keys);
    run_on_cpu(layer, on_cpu, pairs, K);  // overlaps the GPU's chunks queued above
  }
  cuda::moe_combine(s.y.get(), s.iota.get(), d_wts, T, K, H, s.f.get(), stream_);
}

void GpuEngine::pairs_on_device(int layer, int64_t T, const cuda::GroupedDesc* tab,
                                const std::array<cuda::DeviceWeight, 3>& shape) {
  const ModelConfig& c = model_.cfg;
  Scratch& s = *s_;
  const int E = c.router.n_experts, K = c.router.top_k;
  const int64_t P = T * K;
  cuda::QgemvGrouped* plans[3] = {&grouped_[0], &grouped_[1], &grouped_[2]};
  const cuda::QgemvGrouped::PairPlan pp[3] = {{tab, false, shape[0]},
                                              {tab + E, false, shape[1]},
                                              {tab + 2 * E, true, shape[2]}};  // down reads g row i: pair i's
  cuda::QgemvGrouped::set_pairs(plans, pp, 3, s.dids.get() + layer * P, T, K, stream_);
  grouped_[0].run(s.h.get(), s.g.get(), stream_);
  grouped_[1].run(s.h.get(), s.u.get(), stream_);
  cuda::silu_mul(s.g.get(), s.u.get(), P * c.moe_intermediate, s.g.get(), stream_);
  grouped_[2].run(s.g.get(), s.y.get(), stream_);
}

void GpuEngine::grouped_swiglu(const float* x, int64_t x_rows, int64_t gu_rows, int64_t r0, int64_t r1, int64_t y_rows) {
  Scratch& s = *s_;
  const int64_t I = model_.cfg.moe_intermediate;
  grouped_[0].set(group_[0], x_rows, gu_rows, stream_);
  grouped_[0].run(x, s.g.get(), stream_);
  grouped_[1].set(group_[1], x_rows, gu_rows, stream_);
  grouped_[1].run(x, s.u.get(), stream_);
  cuda::silu_mul(s.g.get() + r0 * I, s.u.get() + r0 * I, (r1 - r0) * I, s.g.get() + r0 * I, stream_);
  grouped_[2].set(group_[2], gu_rows, y_rows, stream_);
  grouped_[2].run(s.g.get(), s.y.get(), stream_);
}

void GpuEngine::run_on_cpu(int layer, std::span<const int> experts, const std::vector<std::vector<int32_t>>& pairs,
                           int K) {
  Scratch& s = *s_;
  const int64_t H = model_.cfg.hidden, I = model_.cfg.moe_intermediate;
  const float* h = s.host_h.as<float>();
  float* y = s.host_y.as<float>();  // [T * k, H]: row i is pair i's
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
      std::copy_n(&out[size_t(r * H)], H, y + i * H);
      MOE_CUDA_CHECK(cudaMemcpyAsync(s.y.get() + i * H, y + i * H, size_t(H) * sizeof(float), cudaMemcpyHostToDevice,
                                     stream_));
    }
  }
}

void GpuEngine::moe_general(int layer, const BatchPlan& plan) {
  const ModelConfig& c = model_.cfg;
  const GpuLayer& W = weights_.layers[size_t(layer)];
  Scratch& s = *s_;
  const int E = c.router.n_experts, K = c.router.top_k;
  const int64_t T = plan.tokens(), H = c.hidden, I = c.moe_intermediate;

  // Router logits to the host; the host routes with the CPU engine's rule (softmax, top-k,
  // ties to the lower index, optional renormalisation). The sync also means every kernel of
  // the previous layer is done, so its experts' slots can be released now.
  apply(W.router, s.h.get(), T, s.router.get(), *gemm_, stream_);
  float* probs = s.host_probs.as<float>();  // [T, E] pinned: the read-back is a plain DMA
  MOE_CUDA_CHECK(cudaMemcpyAsync(probs, s.router.get(), size_t(T * E) * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  sync();
  std::vector<int32_t> ids(size_t(T * K));
  std::vector<float> wts(size_t(T * K));
  cpu::route(probs, T, E, K, c.router.norm_topk_prob, ids.data(), wts.data());
  if (override_) override_(layer, int(T), K, ids.data(), wts.data());
  if (!hooks_.empty()) {
    std::vector<float> h(size_t(T * H)), x(size_t(T * H));
    s.h.download(h.data(), h.size());
    s.x.download(x.data(), x.size());
    const RoutingEvent ev{layer, int(T), K, ids.data(), wts.data(), plan.seq.data(), plan.pos.data(), h.data(), x.data()};
    for (const auto& hook : hooks_) hook(ev);
  }
  const RoutingEvent seen{layer, int(T), K, ids.data(), wts.data(), plan.seq.data(), plan.pos.data(), nullptr, nullptr};
  for (const auto& observer : observers_) observer(seen);

  // Pairs (t, j) grouped by expert, ascending: gathered row r holds the token idx[r]; pair i's
  // output is row yrow[i]. The previous layer's upload from host_route is done (sync above).
  const int64_t TK = T * K;
  int32_t* idx = s.host_route.as<int32_t>();
  int32_t* yrow = idx + TK;
  std::memcpy(yrow + TK, wts.data(), size_t(TK) * sizeof(float));  // the gate weights' bits
  std::vector<std::vector<int32_t>> by_expert(static_cast<size_t>(E));
  for (int64_t i = 0; i < TK; ++i) by_expert[size_t(ids[size_t(i)])].push_back(int32_t(i));
  std::vector<int> used;
  std::vector<int64_t> first;  // [used] first row of each used expert
  int32_t rows = 0;
  for (int e = 0; e < E; ++e) {
    if (by_expert[size_t(e)].empty()) continue;
    used.push_back(e);
    first.push_back(rows);
    for (int32_t i : by_expert[size_t(e)]) {
      yrow[i] = rows;
      idx[rows++] = i / K;
    }
  }
  MOE_CUDA_CHECK(cudaMemcpyAsync(s.route.get(), idx, size_t(3 * TK) * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  const int32_t* d_idx = s.route.get();
  const int32_t* d_yrow = d_idx + TK;
  const float* d_wts = reinterpret_cast<const float*>(d_idx + 2 * TK);
  cuda::gather_rows(s.h.get(), d_idx, TK, H, s.xg.get(), stream_);

  // top_k experts at a time (a budget always holds that many). A chunk's slots are released
  // once the device is done with them: at once after a sync when more chunks follow (their
  // acquires may need the slots), else at the next layer's sync.
  const bool defer = tier_->fully_resident() || tier_->slots() >= 2 * size_t(K);
  const bool grouped = opts_.grouped_experts && grouped_ok_;
  for (size_t c0 = 0; c0 < used.size(); c0 += size_t(K)) {
    const size_t c1 = std::min(used.size(), c0 + size_t(K));
    std::vector<VramExpert> ve;
    const Clock::time_point ta = Clock::now();
    for (size_t u = c0; u < c1; ++u) {
      ve.push_back(tier_->acquire(layer, used[u]));
      // Listed at once: should anything below throw, the next sync still releases it.
      pending_release_.push_back({layer, used[u]});
    }
    times_.acquire_s += seconds_since(ta);
    for (auto& g : group_) g.clear();
    for (size_t u = c0; u < c1; ++u) {
      const VramExpert& x = ve[u - c0];
      if (x.ticket) dev_->stream_wait(x.ticket, stream_);  // compute waits for this copy only
      const auto w = slot_weights(*records_, x.addr);
      const int64_t r0 = first[u], n = int64_t(by_expert[size_t(used[u])].size());
      if (grouped) {  // this expert's rows of xg -> the same rows of g / u / y
        std::vector<int32_t> rows(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) rows[size_t(i)] = int32_t(r0 + i);
        for (size_t p = 0; p < 3; ++p) group_[p].push_back({w[p], rows, rows});
        continue;
      }
      float* g = s.g.get() + r0 * I;
      float* up = s.u.get() + r0 * I;
      apply(w[0], s.xg.get() + r0 * H, n, g, *gemm_, stream_);
      apply(w[1], s.xg.get() + r0 * H, n, up, *gemm_, stream_);
      cuda::silu_mul(g, up, n * I, g, stream_);
      apply(w[2], g, n, s.y.get() + r0 * H, *gemm_, stream_);
    }
    if (grouped) {
      // The chunk's rows are consecutive: [first[c0], first[c1 - 1] + its tokens).
      const int64_t R0 = first[c0], R1 = first[c1 - 1] + int64_t(by_expert[size_t(used[c1 - 1])].size());
      grouped_swiglu(s.xg.get(), TK, TK, R0, R1, TK);
    }
    // Released (in sync) once the device is done with them: now when more chunks follow or
    // the budget cannot spare them, else at the next layer's sync.
    if (c1 != used.size() || !defer) sync();
  }
  cuda::moe_combine(s.y.get(), d_yrow, d_wts, T, K, H, s.f.get(), stream_);
}

void GpuEngine::shared_expert(int layer, int64_t T) {
  const ModelConfig& c = model_.cfg;
  if (c.shared_intermediate <= 0) return;
  const GpuLayer& W = weights_.layers[size_t(layer)];
  Scratch& s = *s_;
  dense_ffn(W.shared_gate_proj, W.shared_up, W.shared_down, T, c.shared_intermediate, s.h.get(), s.sh.get());
  const float* gl = nullptr;
  if (!W.shared_gate.empty()) {
    apply(W.shared_gate, s.h.get(), T, s.sgate.get(), *gemm_, stream_);
    gl = s.sgate.get();
  }
  cuda::add_gated(s.f.get(), s.sh.get(), gl, T, c.hidden, stream_);
}

}  // namespace moe::gpu
