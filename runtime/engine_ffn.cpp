// Feed-forward block of one layer: a dense SwiGLU, or a routed mixture of experts
// (+ an optional shared expert). Tokens are grouped by expert so each expert's weights
// are read once per step, whatever the number of tokens routed to it.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/routing.h"
#include "runtime/engine.h"
#include "runtime/expert_chunks.h"
#include "runtime/router_spec.h"

namespace moe {

void Engine::dense_ffn(const FfnWeights& w, int64_t n, int64_t inter, const float* h, float* out) {
  cpu::swiglu_ffn(pool_, w.gate, w.up, w.down, n, inter, h, out);
}

void Engine::ffn(int layer, const std::vector<Tok>& toks, const std::vector<float>& x, const std::vector<float>& h,
                 std::vector<float>& out) {
  const LayerWeights& L = model_.layers[size_t(layer)];
  if (L.kind == FfnKind::Dense) dense_ffn(L.dense, int64_t(toks.size()), model_.cfg.dense_intermediate, h.data(), out.data());
  else moe(layer, toks, x, h, out);
}

void Engine::moe(int layer, const std::vector<Tok>& toks, const std::vector<float>& x, const std::vector<float>& h,
                 std::vector<float>& out) {
  const ModelConfig& c = model_.cfg;
  const LayerWeights& L = model_.layers[size_t(layer)];
  const int E = c.router.n_experts, K = c.router.top_k;
  const int64_t T = int64_t(toks.size()), H = c.hidden, I = c.moe_intermediate;

  // Router: scores (softmax or sigmoid), the group limit, top-k, renormalisation, scaling.
  std::vector<float> probs(size_t(T * E));  // [T, E]
  cpu::matmul(pool_, h.data(), T, L.router, probs.data(), L.router_logit_bias);
  std::vector<int32_t> ids(size_t(T * K));  // [T, K]
  std::vector<float> wts(size_t(T * K));    // [T, K]
  std::vector<float> bias;
  const cpu::RouterSpec spec = router_spec(c, L, bias);
  cpu::route_ex(probs.data(), T, spec, ids.data(), wts.data());
  if (override_) override_(layer, int(T), K, ids.data(), wts.data());
  if (!hooks_.empty()) {
    std::vector<int32_t> seq(static_cast<size_t>(T)), pos(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      seq[size_t(t)] = toks[size_t(t)].seq;
      pos[size_t(t)] = toks[size_t(t)].pos;
    }
    const RoutingEvent ev{layer, int(T), K, ids.data(), wts.data(), seq.data(), pos.data(), h.data(), x.data()};
    for (const auto& hook : hooks_) hook(ev);
  }

  // Group (token, slot) pairs by expert. Expert e's outputs go to rows [first[e], first[e] +
  // count) of ys, in ascending expert order, so each job writes its rows in place.
  std::vector<std::vector<int64_t>> by_expert(static_cast<size_t>(E));  // entries t * K + j
  for (int64_t i = 0; i < T * K; ++i) by_expert[size_t(ids[size_t(i)])].push_back(i);
  std::vector<int64_t> first(size_t(E) + 1, 0), row_of(size_t(T * K));  // row_of: slot -> ys row
  for (int e = 0; e < E; ++e) {
    const auto& rows = by_expert[size_t(e)];
    for (size_t r = 0; r < rows.size(); ++r) row_of[size_t(rows[r])] = first[size_t(e)] + int64_t(r);
    first[size_t(e) + 1] = first[size_t(e)] + int64_t(rows.size());
  }
  std::vector<float>& ys = moe_ys_;  // [T * K, H]: every row is written by its expert below
  if (ys.size() < size_t(T * K * H)) ys.resize(size_t(T * K * H));
  // Resident experts first: the prefetcher streams the others in meanwhile (the routing hook
  // above queued them). The order of the chunks does not touch the result: the sums below
  // always run in ascending expert order.
  std::vector<int> used;
  for (int e = 0; e < E; ++e)
    if (!by_expert[size_t(e)].empty()) used.push_back(e);
  ExpertSource& src = *model_.experts;
  const auto misses = std::stable_partition(used.begin(), used.end(), [&](int e) { return src.resident(layer, e); });
  // Resident experts in chunks of up to 1024 rows: a 16-sequence decode step is one chunk (3-12%
  // more tokens/s than chunks of top_k in alternated runs, docs/results/2026-12-07-expert-chunks.md);
  // 4096 made prompt-heavy steps slower (bigger buffers).
  std::vector<size_t> expert_rows(used.size());
  for (size_t i = 0; i < used.size(); ++i) expert_rows[i] = by_expert[size_t(used[i])].size();
  const std::vector<size_t> bounds = expert_chunk_bounds(expert_rows, size_t(misses - used.begin()), size_t(K), 1024);
  std::vector<std::vector<float>>& xin = moe_xin_;  // grown, never shrunk: rows written before read
  size_t widest = 0;
  for (size_t b = 1; b < bounds.size(); ++b) widest = std::max(widest, bounds[b] - bounds[b - 1]);
  if (xin.size() < widest) xin.resize(widest);
  std::vector<cpu::FfnJob> jobs;
  // gpt-oss: each expert's biases widened to f32 ([gate I | up I | down H] per chunk slot) and
  // the clamped activation; its experts then run in the same two parallel sections as others.
  const bool biased = !L.expert_gate_bias.empty() || !L.expert_up_bias.empty() || !L.expert_down_bias.empty();
  std::vector<float> biases(biased ? widest * size_t(2 * I + H) : 0);
  const cpu::ClampedSwiglu clamp{float(c.expert_act.limit), float(c.expert_act.alpha)};
  for (size_t b = 1; b < bounds.size(); ++b) {
    const std::span<const int> chunk(used.data() + bounds[b - 1], bounds[b] - bounds[b - 1]);
    const HeldExperts w(src, layer, chunk);  // released even when a kernel throws
    jobs.clear();
    // An expert that every token chose reads h itself (its rows are the tokens in order): at
    // decode all of them do, and the matmuls then quantize the token once for all experts. The
    // others' rows are gathered, split over the pool (a prompt's are ~100 MB a layer).
    std::vector<std::pair<size_t, int64_t>> gather;  // (chunk index, row), in order
    for (size_t ci = 0; ci < chunk.size(); ++ci) {
      const auto& rows = by_expert[size_t(chunk[ci])];
      if (int64_t(rows.size()) == T) continue;
      if (xin[ci].size() < rows.size() * size_t(H)) xin[ci].resize(rows.size() * size_t(H));
      for (size_t r = 0; r < rows.size(); ++r) gather.emplace_back(ci, int64_t(r));
    }
    pool_.parallel_for(int64_t(gather.size()), 64, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const auto [ci, r] = gather[size_t(i)];
        std::copy_n(&h[size_t(by_expert[size_t(chunk[ci])][size_t(r)] / K * H)], H, &xin[ci][size_t(r * H)]);
      }
    });
    for (size_t ci = 0; ci < chunk.size(); ++ci) {
      const int e = chunk[ci];
      const int64_t n = int64_t(by_expert[size_t(e)].size());
      float* y = &ys[size_t(first[size_t(e)] * H)];
      const float* xe = n == T ? h.data() : xin[ci].data();
      cpu::FfnJob job{w[ci].gate, w[ci].up, w[ci].down, n, xe, y};
      if (biased) {
        float* b = &biases[ci * size_t(2 * I + H)];
        const auto widen = [&](const WeightView& all, int64_t len, float* to) -> const float* {
          if (all.empty()) return nullptr;
          cpu::to_f32(all, int64_t(e) * len, len, to);
          return to;
        };
        job.gate_bias = widen(L.expert_gate_bias, I, b);
        job.up_bias = widen(L.expert_up_bias, I, b + I);
        job.down_bias = widen(L.expert_down_bias, H, b + 2 * I);
      }
      if (c.expert_act.clamped) job.clamp = &clamp;
      jobs.push_back(job);
    }
    cpu::swiglu_ffn_many(pool_, jobs, I);
  }
  // out[t] = sum of g * y over t's experts in ascending id: the same sums whatever ran first.
  // Tokens are independent: split over the pool.
  pool_.parallel_for(T, 8, [&](int64_t t0, int64_t t1) {
    std::vector<int> order(static_cast<size_t>(K));
    for (int64_t t = t0; t < t1; ++t) {
      const int32_t* ti = &ids[size_t(t * K)];
      for (int j = 0; j < K; ++j) order[size_t(j)] = j;
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return ti[a] < ti[b]; });
      float* o = &out[size_t(t * H)];
      std::fill(o, o + H, 0.0f);
      for (int j : order) {
        const float g = wts[size_t(t * K + j)];
        const float* y = &ys[size_t(row_of[size_t(t * K + j)] * H)];
        for (int64_t d = 0; d < H; ++d) o[d] += g * y[d];
      }
    }
  });

  if (c.shared_intermediate > 0) {
    std::vector<float> s(size_t(T * H));
    dense_ffn(L.shared, T, c.shared_intermediate, h.data(), s.data());
    std::vector<float> gw;  // [H] the shared expert's gate row, widened once per step
    if (!L.shared_gate.empty()) {
      gw.resize(size_t(H));
      cpu::to_f32(L.shared_gate, 0, H, gw.data());
    }
    for (int64_t t = 0; t < T; ++t) {
      const float g = gw.empty() ? 1.0f : 1.0f / (1.0f + std::exp(-cpu::dot(&h[size_t(t * H)], gw.data(), H)));
      for (int64_t d = 0; d < H; ++d) out[size_t(t * H + d)] += g * s[size_t(t * H + d)];
    }
  }
}

}  // namespace moe
