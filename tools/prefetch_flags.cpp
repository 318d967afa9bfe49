#include "tools/prefetch_flags.h"

#include <algorithm>

#include <fmt/format.h>

#include "storage/tier/budget.h"

namespace moe::cli {

void add_prefetch_flags(CLI::App* cmd, PrefetchFlags& f, bool list) {
  auto* opt = cmd->add_option("--prefetch", f.mode,
                              std::string("Expert prefetch: auto (gate when the experts do not all fit in RAM), off, gate "
                                          "(early routing), history (learned layer-to-layer transitions) or blend") +
                                  (list ? "; a comma-separated list (off,gate) measures each, alternating" : ""))
                  ->capture_default_str();
  if (!list) opt->check(CLI::IsMember({"auto", "off", "gate", "history", "blend"}));
  cmd->add_option("--lookahead", f.lookahead, "MoE layers ahead to predict and prefetch (1-8)")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  cmd->add_option("--prefetch-k", f.prefetch_k, "Experts prefetched per predicted layer and token (0 = the model's top-k)");
  cmd->add_option("--prefetch-inflight", f.inflight, "Most prefetch bytes being read at once (default: top-k experts)");
  cmd->add_option("--prefetch-min-recall", f.min_recall,
                  "Hold back guesses at a lookahead whose recent recall@k is below this (default: max(0.2, 2 x "
                  "top-k / experts); 0 = never)");
  cmd->add_option("--trace", f.trace, "Write a routing trace (JSONL: chosen experts, gate weights, predictions)");
}

std::string resolve_prefetch_mode(const OpenModel& m, const PrefetchFlags& f) {
  if (f.mode != "auto") return f.mode;
  if (!f.trace.empty()) return "gate";
  if (m.tier && m.tier->budget_bytes() < total_expert_bytes(m.tier->catalog())) return "gate";
  return "off";
}

namespace {

PrefetchModelInfo model_info(const OpenModel& om, const std::string& path) {
  const Model& m = om.model;
  PrefetchModelInfo info;
  info.model = path;
  info.rms_eps = float(m.cfg.rms_eps);
  info.top_k = m.cfg.router.top_k;
  info.n_experts = experts_per_layer(m);
  for (int l = 0; l < m.cfg.n_layers; ++l) {
    const LayerWeights& L = m.layers[size_t(l)];
    const bool moe = info.n_experts[size_t(l)] > 0;
    info.routers.push_back(moe ? LayerRouter{L.ffn_norm, L.router} : LayerRouter{});
    uint64_t b = 0;
    if (moe && om.tier) {
      b = om.tier->read_bytes(l, 0);
    } else if (moe) {
      b = uint64_t(m.experts->acquire(l, 0).bytes());
      m.experts->release(l, 0);
    }
    info.expert_bytes.push_back(b);
  }
  return info;
}

}  // namespace

std::unique_ptr<PrefetchController> attach_prefetch(OpenModel& m, const std::string& model_path, InferenceEngine& engine,
                                                    const PrefetchFlags& f, const std::string& mode,
                                                    std::unique_ptr<Predictor> predictor, PrefetchTarget* target) {
  PrefetchOptions o;
  o.predictor = !mode.empty() ? mode : target && f.mode == "auto" ? "gate" : resolve_prefetch_mode(m, f);
  o.lookahead = f.lookahead;
  o.prefetch_k = f.prefetch_k;
  o.max_inflight_bytes = f.inflight.empty() ? 0 : parse_budget(f.inflight, 0);
  o.trace = f.trace;
  o.min_recall = f.min_recall;
  if (o.predictor == "off" && o.trace.empty() && !predictor) return nullptr;
  auto c = std::make_unique<PrefetchController>(model_info(m, model_path), m.tier, o, std::move(predictor), target);
  engine.add_routing_hook(c->hook());
  return c;
}

nlohmann::json prefetch_json(const PrefetchController* c, const OpenModel& m, uint64_t tokens) {
  nlohmann::json j = {{"prefetch", c ? c->options().predictor : "off"}};
  const TierLayerStats t = m.tier ? m.tier->stats().total : TierLayerStats{};
  j["prefetch_precision"] = t.prefetch_precision();
  j["prefetch_recall"] = t.prefetch_recall();
  j["prefetch_wasted_bytes_per_token"] = tokens ? double(t.prefetch_wasted_bytes) / double(tokens) : 0.0;
  j["prefetch_used"] = t.prefetch_used;
  j["prefetch_wasted"] = t.prefetch_wasted;
  if (!c) return j;
  j["lookahead"] = c->options().lookahead;
  nlohmann::json rec = nlohmann::json::array();
  for (const RecallCounter& r : c->recall())
    rec.push_back({{"lookahead", r.distance},
                   {"at_k", r.at_k()},
                   {"at_2k", r.at_2k()},
                   {"samples", r.samples},
                   {"gated_share", r.predicted ? double(r.gated) / double(r.predicted) : 0.0}});
  j["predictor_recall"] = rec;
  const SchedulerStats s = c->scheduler_stats();
  j["prefetch_issued"] = s.issued;
  j["prefetch_cancelled"] = s.cancelled;
  j["prefetch_skipped_present"] = s.skipped;
  j["prefetch_batches"] = s.batches;
  j["prefetch_max_inflight_bytes"] = s.max_inflight_bytes;
  j["prefetch_deferred_for_demand"] = s.deferred_for_demand;
  j["prefetch_hook_ms_per_token"] = tokens ? c->hook_seconds() * 1e3 / double(tokens) : 0.0;
  j["router_entropy"] = c->router_entropy();
  j["expert_tokens"] = c->expert_tokens();
  return j;
}

std::string format_prefetch_stats(const PrefetchController* c, const OpenModel& m, uint64_t tokens) {
  if (!c) return "prefetch: off\n";
  const nlohmann::json j = prefetch_json(c, m, tokens);
  std::string out = fmt::format("prefetch: {} (lookahead {})", c->options().predictor, c->options().lookahead);
  for (const RecallCounter& r : c->recall())
    out += fmt::format(" | predictor recall@k d={}: {:.3f} (@2k {:.3f}, held back {:.0f}%)", r.distance, r.at_k(), r.at_2k(),
                       r.predicted ? 100.0 * double(r.gated) / double(r.predicted) : 0.0);
  out += "\n";
  if (c->prefetching())
    out += fmt::format("prefetch: precision {:.3f}, recall {:.3f}, {} issued, {} cancelled, {} wasted per token\n",
                       j["prefetch_precision"].get<double>(), j["prefetch_recall"].get<double>(),
                       j["prefetch_issued"].get<uint64_t>(), j["prefetch_cancelled"].get<uint64_t>(),
                       format_bytes(uint64_t(j["prefetch_wasted_bytes_per_token"].get<double>())));
  const std::vector<double> h = c->router_entropy();
  std::string hs;
  for (size_t l = 0; l < h.size(); ++l)
    if (!c->expert_tokens()[l].empty()) hs += fmt::format("{}{:.2f}", hs.empty() ? "" : " ", h[l]);
  out += fmt::format("routing: entropy per MoE layer (nats) {}\n", hs);
  // Per-expert token counts, summarised per layer (all of them: bench --json expert_tokens).
  std::string ts;
  for (const auto& row : c->expert_tokens()) {
    if (row.empty()) continue;
    const auto [lo, hi] = std::minmax_element(row.begin(), row.end());
    ts += fmt::format("{}{}-{}", ts.empty() ? "" : " ", *lo, *hi);
  }
  out += fmt::format("routing: tokens per expert, quietest-busiest per MoE layer: {}\n", ts);
  return out;
}

}  // namespace moe::cli
