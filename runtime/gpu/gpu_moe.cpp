// The routed experts of a MoE layer on the GPU engine, and its shared expert: router ->
// dispatch (expert_dispatch.h: where each expert runs, its slot weights) -> grouped GEMV ->
// combine. Where the layer routes is the step plan's (step_plan.h).
//
// Routed on the device (moe_pairs: decode steps with quantized experts): every (token, expert)
// pair is one single-token item of a grouped GEMV per projection. With every expert resident
// the plan is written on the device from the routed ids and per-layer descriptor tables
// (set_pairs): no host round trip. Otherwise the ids come back, the dispatch acquires the
// experts from the VRAM tier (or sends a miss to the CPU) and stages their descriptors in the
// step table, and the same device-planned pairs run; past one chunk of top_k experts the host
// plans the same single-token items (set). The same kernel over the same items, so the budget
// never changes the numbers.
//
// Routed on the host (moe_general): the router's logits come back, the host routes with the
// model's own rule (router_spec.h), gathers each expert's rows and runs the experts chunk by
// chunk (top_k at a time), with gpt-oss's expert biases and clamped SwiGLU where the layer has them.
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
#include "runtime/router_spec.h"

namespace moe::gpu {

void GpuEngine::route_on_device(int layer, int64_t T) {
  const ModelConfig& c = model_.cfg;
  Scratch& s = *s_;
  const int64_t P = T * c.router.top_k;
  const GpuLayer& W = weights_.layers[size_t(layer)];
  apply(W.router, s.h.get(), T, s.router.get(), *gemm_, stream_);
  cuda::router_route(s.router.get(), T, c.router.n_experts, c.router.top_k, router_rules_[size_t(layer)],
                     s.dids.get() + layer * P, s.dwts.get() + layer * P, stream_);
  mark("router");
}

void GpuEngine::moe(int layer, const BatchPlan& plan, const StepPlan& step) {
  if (step.route[size_t(layer)] == RouteSite::Device)
    moe_pairs(layer, plan, step);  // route_on_device(layer) has run
  else
    moe_general(layer, plan);
  mark("experts");  // with the host's routing (router logits, read-back), when it routes
  if (model_.cfg.shared_intermediate <= 0) return;
  shared_expert(layer, plan.tokens());
  mark("shared_expert");
}

void GpuEngine::moe_pairs(int layer, const BatchPlan& plan, const StepPlan& step) {
  const ModelConfig& c = model_.cfg;
  Scratch& s = *s_;
  const int E = c.router.n_experts, K = c.router.top_k;
  const int64_t T = plan.tokens(), H = c.hidden, P = T * K;
  const float* d_wts = s.dwts.get() + layer * P;  // this layer's routing (route_on_device)

  if (step.experts_on_device) {  // everything on the device
    pairs_on_device(layer, T, dispatch_->device_table(layer));
    cuda::moe_combine(s.y.get(), s.iota.get(), d_wts, T, K, H, s.f.get(), stream_);
    return;
  }

  const int32_t* ids = routing_to_host(layer, plan);  // hooks and observers told, override applied
  // Pairs by expert; a missed expert goes to the CPU when the cost model says that is sooner.
  std::vector<std::vector<int32_t>> pairs(static_cast<size_t>(E));
  for (int64_t i = 0; i < P; ++i) pairs[size_t(ids[i])].push_back(int32_t(i));
  std::vector<RoutedExpert> routed;
  for (int e = 0; e < E; ++e)
    if (!pairs[size_t(e)].empty()) routed.push_back({e, int(pairs[size_t(e)].size())});
  const MissSplit split = dispatch_->split(layer, routed);
  const std::vector<int>& on_gpu = split.gpu;
  const std::vector<int>& on_cpu = split.cpu;

  const bool defer = dispatch_->defer_release();
  if (!on_gpu.empty() && on_gpu.size() <= size_t(K)) {
    // One chunk (every decode step of one token): the experts' descriptors go to the step table,
    // and the pairs run exactly as with every expert resident (the same plans and kernels). The
    // sync above covered the previous layer's upload of it.
    const ExpertTable tab = dispatch_->stage(layer, split);
    const auto run = [&] { pairs_on_device(layer, T, tab); };
    if (step.graphs == GraphMode::Segments)
      times_.graph_segments += graphs_->run(1 + size_t(c.n_layers) + size_t(layer), graph_key(T, step_rows_), run);
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
    for (auto& g : group_tc_) g.clear();  // decode tokens: never on tensor cores
    for (size_t u = c0; u < c1; ++u) {
      const SlotWeights w = dispatch_->acquire(layer, on_gpu[u]);
      for (const int32_t i : pairs[size_t(on_gpu[u])]) {
        group_[0].push_back({w[0], {int32_t(i / K)}, {row}});
        group_[1].push_back({w[1], {int32_t(i / K)}, {row}});
        group_[2].push_back({w[2], {row}, {i}});
        ++row;
      }
    }
    grouped_swiglu(layer, s.h.get(), T, row, r0, row, P);
    if (c1 != on_gpu.size() || !defer) sync();
  }
  // Overlaps the GPU's chunks queued above; replaces the rows the GPU computed for them.
  if (!on_cpu.empty())
    dispatch_->run_on_cpu(layer, on_cpu, pairs, K, s.host_h.as<float>(), s.host_y.as<float>(), s.y.get());
  cuda::moe_combine(s.y.get(), s.iota.get(), d_wts, T, K, H, s.f.get(), stream_);
}

// The device's routing of a layer to the host (and h, for the hooks or the CPU; x for the
// hooks). The sync also means every kernel of the previous layer is done, so its experts' slots
// can be released now.
const int32_t* GpuEngine::routing_to_host(int layer, const BatchPlan& plan) {
  const ModelConfig& c = model_.cfg;
  Scratch& s = *s_;
  const int E = c.router.n_experts, K = c.router.top_k;
  const int64_t T = plan.tokens(), H = c.hidden, P = T * K;
  int32_t* d_ids = s.dids.get() + layer * P;  // kept on the device for the combine and observers
  float* d_wts = s.dwts.get() + layer * P;
  int32_t* ids = s.host_route.as<int32_t>();
  float* wts = reinterpret_cast<float*>(ids + P);
  float* h = s.host_h.as<float>();
  MOE_CUDA_CHECK(cudaMemcpyAsync(ids, d_ids, size_t(P) * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
  MOE_CUDA_CHECK(cudaMemcpyAsync(wts, d_wts, size_t(P) * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  float* x = s.host_x.as<float>();
  if (dispatch_->cpu_misses() || !hooks_.empty())
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
  tell_routing(layer, plan, ids, wts, h, x);
  return ids;
}


void GpuEngine::tell_routing(int layer, const BatchPlan& plan, const int32_t* ids, const float* wts, const float* h,
                             const float* x) {
  const int T = int(plan.tokens()), K = model_.cfg.router.top_k;
  if (!hooks_.empty()) {
    const RoutingEvent ev{layer, T, K, ids, wts, plan.seq.data(), plan.pos.data(), h, x};
    for (const auto& hook : hooks_) hook(ev);
  }
  const RoutingEvent seen{layer, T, K, ids, wts, plan.seq.data(), plan.pos.data(), nullptr, nullptr};
  for (const auto& observer : observers_) observer(seen);
}

void GpuEngine::pairs_on_device(int layer, int64_t T, const ExpertTable& tab) {
  const ModelConfig& c = model_.cfg;
  Scratch& s = *s_;
  const int E = c.router.n_experts, K = c.router.top_k;
  const int64_t P = T * K;
  cuda::QgemvGrouped* plans[3] = {&grouped_[0], &grouped_[1], &grouped_[2]};
  const cuda::QgemvGrouped::PairPlan pp[3] = {{tab.descs, false, tab.shape[0]},
                                              {tab.descs + E, false, tab.shape[1]},
                                              {tab.descs + 2 * E, true, tab.shape[2]}};  // down reads g row i: pair i's
  cuda::QgemvGrouped::set_pairs(plans, pp, 3, s.dids.get() + layer * P, T, K, stream_);
  grouped_[0].run(s.h.get(), s.g.get(), stream_);
  grouped_[1].run(s.h.get(), s.u.get(), stream_);
  activate(s.g.get(), s.u.get(), P * c.moe_intermediate);
  grouped_[2].run(s.g.get(), s.y.get(), stream_);
}

void GpuEngine::activate(float* g, const float* u, int64_t n) {
  const ModelConfig& c = model_.cfg;
  if (c.expert_act.clamped)
    cuda::clamped_swiglu(g, u, n, float(c.expert_act.limit), float(c.expert_act.alpha), g, stream_);
  else
    cuda::silu_mul(g, u, n, g, stream_);
}

void GpuEngine::add_expert_bias(const cuda::DeviceBuffer<float>& b, int expert, int64_t width, float* rows, int64_t n) {
  if (b.size()) cuda::add_bias(rows, b.get() + int64_t(expert) * width, n, width, stream_);
}

void GpuEngine::grouped_swiglu(int layer, const float* x, int64_t x_rows, int64_t gu_rows, int64_t r0, int64_t r1,
                               int64_t y_rows, const std::vector<ExpertRows>& biased) {
  Scratch& s = *s_;
  const GpuLayer& W = weights_.layers[size_t(layer)];
  const int64_t I = model_.cfg.moe_intermediate, H = model_.cfg.hidden;
  if (W.expert_biases() && biased.empty() && r1 > r0)
    throw std::logic_error("grouped_swiglu: a layer with expert biases needs its experts' rows");
  // Projection p's pairs: the fp32 plan, and the tensor-core plan's rows (others: no order between
  // the two matters).
  auto project = [&](int p, const float* in, int64_t in_rows, float* out, int64_t out_rows) {
    grouped_[p].set(group_[p], in_rows, out_rows, stream_);
    grouped_[p].run(in, out, stream_);
    if (group_tc_[p].empty()) return;
    grouped_tc_[p].set(group_tc_[p], in_rows, out_rows, stream_, cuda::GroupedMath::TensorCoreBf16);
    grouped_tc_[p].run(in, out, stream_);
  };
  project(0, x, x_rows, s.g.get(), gu_rows);
  project(1, x, x_rows, s.u.get(), gu_rows);
  for (const ExpertRows& r : biased) {
    add_expert_bias(W.expert_gate_bias, r.expert, I, s.g.get() + r.row * I, r.n);
    add_expert_bias(W.expert_up_bias, r.expert, I, s.u.get() + r.row * I, r.n);
  }
  activate(s.g.get() + r0 * I, s.u.get() + r0 * I, (r1 - r0) * I);
  project(2, s.g.get(), gu_rows, s.y.get(), y_rows);
  for (const ExpertRows& r : biased) add_expert_bias(W.expert_down_bias, r.expert, H, s.y.get() + r.row * H, r.n);
}

void GpuEngine::moe_general(int layer, const BatchPlan& plan) {
  const ModelConfig& c = model_.cfg;
  const GpuLayer& W = weights_.layers[size_t(layer)];
  Scratch& s = *s_;
  const int E = c.router.n_experts, K = c.router.top_k;
  const int64_t T = plan.tokens(), H = c.hidden, I = c.moe_intermediate;

  // Router logits to the host; the host routes with the CPU engine's rule (router_spec: softmax
  // or sigmoid scores, correction bias, group limit, top-k with ties to the lower index,
  // renormalisation, scaling). The sync also means every kernel of the previous layer is done,
  // so its experts' slots can be released now.
  apply(W.router, s.h.get(), T, s.router.get(), *gemm_, stream_);
  float* probs = s.host_probs.as<float>();  // [T, E] pinned: the read-back is a plain DMA
  MOE_CUDA_CHECK(cudaMemcpyAsync(probs, s.router.get(), size_t(T * E) * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  sync();
  std::vector<int32_t> ids(size_t(T * K));
  std::vector<float> wts(size_t(T * K));
  std::vector<float> bias;
  cpu::route_ex(probs, T, router_spec(c, model_.layers[size_t(layer)], bias), ids.data(), wts.data());
  if (override_) override_(layer, int(T), K, ids.data(), wts.data());
  std::vector<float> h, x;  // for the hooks only
  if (!hooks_.empty()) {
    h.resize(size_t(T * H));
    x.resize(size_t(T * H));
    s.h.download(h.data(), h.size());
    s.x.download(x.data(), x.size());
  }
  tell_routing(layer, plan, ids.data(), wts.data(), h.data(), x.data());

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
  const bool defer = dispatch_->defer_release();
  const bool grouped = dispatch_->grouped();
  const bool biased = W.expert_biases();  // gpt-oss
  std::vector<ExpertRows> rows_of;        // the chunk's experts' rows, for their biases
  // Tokens of prompt chunks (items of more than one token) on tensor cores, when enabled: chosen by
  // the token's own item, so its path never depends on the other sequences of the step.
  const std::vector<uint8_t>& prompt_token = prompt_token_;  // empty: none, or the option is off
  for (size_t c0 = 0; c0 < used.size(); c0 += size_t(K)) {
    const size_t c1 = std::min(used.size(), c0 + size_t(K));
    // The chunk's copies all start before any compute is queued.
    std::vector<SlotWeights> ws;
    for (size_t u = c0; u < c1; ++u) ws.push_back(dispatch_->acquire(layer, used[u]));
    for (auto& g : group_) g.clear();
    for (auto& g : group_tc_) g.clear();
    rows_of.clear();
    for (size_t u = c0; u < c1; ++u) {
      const SlotWeights& w = ws[u - c0];
      const int e = used[u];
      const int64_t r0 = first[u], n = int64_t(by_expert[size_t(e)].size());
      if (biased) rows_of.push_back({e, r0, n});
      if (grouped) {  // this expert's rows of xg -> the same rows of g / u / y
        std::vector<int32_t> all(static_cast<size_t>(n)), rows, tc_rows;
        for (int64_t i = 0; i < n; ++i) {
          all[size_t(i)] = int32_t(r0 + i);
          if (!prompt_token.empty()) (prompt_token[size_t(idx[r0 + i])] ? tc_rows : rows).push_back(int32_t(r0 + i));
        }
        for (size_t p = 0; p < 3; ++p) {
          if (tc_rows.empty() || !cuda::tensor_core_format(w[p])) {
            group_[p].push_back({w[p], all, all});
            continue;
          }
          if (!rows.empty()) group_[p].push_back({w[p], rows, rows});
          group_tc_[p].push_back({w[p], tc_rows, tc_rows});
        }
        continue;
      }
      float* g = s.g.get() + r0 * I;
      float* up = s.u.get() + r0 * I;
      float* y = s.y.get() + r0 * H;
      apply(w[0], s.xg.get() + r0 * H, n, g, *gemm_, stream_);
      apply(w[1], s.xg.get() + r0 * H, n, up, *gemm_, stream_);
      add_expert_bias(W.expert_gate_bias, e, I, g, n);
      add_expert_bias(W.expert_up_bias, e, I, up, n);
      activate(g, up, n * I);
      apply(w[2], g, n, y, *gemm_, stream_);
      add_expert_bias(W.expert_down_bias, e, H, y, n);
    }
    if (grouped) {
      // The chunk's rows are consecutive: [first[c0], first[c1 - 1] + its tokens).
      const int64_t R0 = first[c0], R1 = first[c1 - 1] + int64_t(by_expert[size_t(used[c1 - 1])].size());
      grouped_swiglu(layer, s.xg.get(), TK, TK, R0, R1, TK, rows_of);
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
    apply_rows(W.shared_gate, s.h.get(), T, s.sgate.get());
    gl = s.sgate.get();
  }
  cuda::add_gated(s.f.get(), s.sh.get(), gl, T, c.hidden, stream_);
}

}  // namespace moe::gpu
