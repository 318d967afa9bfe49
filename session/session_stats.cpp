#include "session/session_stats.h"

#include <algorithm>

#include <fmt/format.h>

#include "storage/tier/budget.h"
#include "storage/process_memory.h"
#include "storage/vram/miss_cost.h"

namespace moe {

nlohmann::json SessionStats::prefetch_json(uint64_t tokens) const {
  const PrefetchReport& p = prefetch;
  nlohmann::json j = {{"prefetch", p.mode}};
  const TierLayerStats t = ram ? ram->total : TierLayerStats{};
  j["prefetch_precision"] = t.prefetch_precision();
  j["prefetch_recall"] = t.prefetch_recall();
  j["prefetch_wasted_bytes_per_token"] = tokens ? double(t.prefetch_wasted_bytes) / double(tokens) : 0.0;
  j["prefetch_used"] = t.prefetch_used;
  j["prefetch_wasted"] = t.prefetch_wasted;
  if (!p.controller) return j;
  j["lookahead"] = p.lookahead;
  nlohmann::json rec = nlohmann::json::array();
  for (const PrefetchReport::Recall& r : p.recall)
    rec.push_back({{"lookahead", r.distance},
                   {"at_k", r.at_k},
                   {"at_2k", r.at_2k},
                   {"samples", r.samples},
                   {"gated_share", r.gated_share}});
  j["predictor_recall"] = rec;
  j["prefetch_issued"] = p.issued;
  j["prefetch_cancelled"] = p.cancelled;
  j["prefetch_skipped_present"] = p.skipped_present;
  j["prefetch_batches"] = p.batches;
  j["prefetch_max_inflight_bytes"] = p.max_inflight_bytes;
  j["prefetch_deferred_for_demand"] = p.deferred_for_demand;
  j["prefetch_hook_ms_per_token"] = tokens ? p.hook_s * 1e3 / double(tokens) : 0.0;
  j["router_entropy"] = p.router_entropy;
  j["expert_tokens"] = p.expert_tokens;
  return j;
}

nlohmann::json SessionStats::gpu_json(uint64_t tokens, double tok_s) const {
  if (!gpu) return nlohmann::json::object();
  const GpuReport& g = *gpu;
  nlohmann::json j = {{"pcie_h2d_bytes_per_s", g.link_bytes_per_s}, {"pcie_latency_s", g.link_latency_s},
                      {"dense_device_bytes", g.dense_device_bytes}};
  if (tokens) {
    j["gpu_forward_ms_per_token"] = g.times.forward_s * 1e3 / double(tokens);
    j["gpu_sync_ms_per_token"] = g.times.sync_s * 1e3 / double(tokens);
    j["gpu_acquire_ms_per_token"] = g.times.acquire_s * 1e3 / double(tokens);
    j["gpu_graph_steps"] = g.times.graph_steps;
    j["gpu_graph_segments"] = g.times.graph_segments;
  }
  if (g.times.phase_steps) {  // --gpu-phases: device ms per profiled decode step, by phase
    nlohmann::json ph = nlohmann::json::array();
    for (const auto& [name, s] : g.times.phase_s)
      ph.push_back({{"phase", name}, {"ms_per_step", s * 1e3 / double(g.times.phase_steps)}});
    j["gpu_phases"] = ph;
    j["gpu_phase_steps"] = g.times.phase_steps;
  }
  j["gpu_device_routed"] = g.device_routed;
  if (g.misses) {
    const MissReport& m = *g.misses;
    j["cpu_misses"] = {{"waited", m.waited},
                       {"on_cpu", m.on_cpu},
                       {"tokens_waited", m.tokens_waited},
                       {"tokens_on_cpu", m.tokens_on_cpu},
                       {"cpu_share", m.cpu_share()},
                       {"calibration",
                        {{"link_bytes_per_s", m.link_bytes_per_s},
                         {"link_latency_s", m.link_latency_s},
                         {"cpu_fixed_s", m.cpu_fixed_s},
                         {"cpu_per_token_s", m.cpu_per_token_s}}}};
  }
  if (!g.vram) return j;
  const VramReport& v = *g.vram;
  const uint64_t acquires = v.hits + v.inflight_hits + v.misses;
  const double copied = tokens ? double(v.bytes_copied) / double(tokens) : 0.0;
  j["vram_budget_bytes"] = v.budget_bytes;
  j["vram_slots"] = v.slots;
  j["vram_budget_share"] = v.all_experts ? double(v.slots) / double(v.all_experts) : 1.0;
  j["vram_all_resident"] = v.all_resident;
  j["vram_hit_rate"] = acquires ? double(v.hits + v.inflight_hits) / double(acquires) : 1.0;
  j["vram_misses_per_token"] = tokens ? double(v.misses) / double(tokens) : 0.0;
  j["vram_copied_bytes_per_token"] = copied;
  j["vram_prefetch_copies"] = v.prefetch_copies;
  j["vram_prefetch_used"] = v.prefetch_used;
  j["vram_prefetch_wasted"] = v.prefetch_wasted;
  j["vram_copy_waits_per_token"] = tokens ? double(v.waits) / double(tokens) : 0.0;
  // Copies alone at the measured bandwidth: the rate decode cannot beat at this miss rate.
  const double link = g.link_bytes_per_s;
  j["pcie_bound_tok_s"] = copied > 0 && link > 0 ? link / copied : 0.0;
  j["pcie_bound_ratio"] = copied > 0 && link > 0 && tok_s > 0 ? (link / copied) / tok_s : 0.0;
  return j;
}

nlohmann::json SessionStats::json(uint64_t tokens, double tok_s) const {
  nlohmann::json j;
  if (ram) {
    j = tier_stats_json(*ram, tokens);
  } else {  // every expert resident: nothing missed, nothing read
    j["ram_hit_rate"] = 1.0;
    j["disk_bytes_per_token"] = 0;
    j["stall_ms_per_token"] = 0.0;
  }
  j.update(prefetch_json(tokens));
  j.update(gpu_json(tokens, tok_s));
  return j;
}

namespace {

std::string format_prefetch(const PrefetchReport& p, const nlohmann::json& j) {
  if (!p.controller) return "prefetch: off\n";
  std::string out = fmt::format("prefetch: {} (lookahead {})", p.mode, p.lookahead);
  for (const PrefetchReport::Recall& r : p.recall)
    out += fmt::format(" | predictor recall@k d={}: {:.3f} (@2k {:.3f}, held back {:.0f}%)", r.distance, r.at_k, r.at_2k,
                       100.0 * r.gated_share);
  out += "\n";
  if (p.prefetching)
    out += fmt::format("prefetch: precision {:.3f}, recall {:.3f}, {} issued, {} cancelled, {} wasted per token\n",
                       j["prefetch_precision"].get<double>(), j["prefetch_recall"].get<double>(), p.issued, p.cancelled,
                       format_bytes(uint64_t(j["prefetch_wasted_bytes_per_token"].get<double>())));
  std::string hs;
  for (size_t l = 0; l < p.router_entropy.size(); ++l)
    if (l < p.expert_tokens.size() && !p.expert_tokens[l].empty())
      hs += fmt::format("{}{:.2f}", hs.empty() ? "" : " ", p.router_entropy[l]);
  out += fmt::format("routing: entropy per MoE layer (nats) {}\n", hs);
  // Per-expert token counts, summarised per layer (all of them: bench --json expert_tokens).
  std::string ts;
  for (const auto& row : p.expert_tokens) {
    if (row.empty()) continue;
    const auto [lo, hi] = std::minmax_element(row.begin(), row.end());
    ts += fmt::format("{}{}-{}", ts.empty() ? "" : " ", *lo, *hi);
  }
  out += fmt::format("routing: tokens per expert, quietest-busiest per MoE layer: {}\n", ts);
  return out;
}

std::string format_gpu(const GpuReport& g, const nlohmann::json& j) {
  std::string out = fmt::format("gpu: dense weights {} on the device", format_bytes(g.dense_device_bytes));
  if (j.contains("gpu_forward_ms_per_token"))
    out += fmt::format(" | per token: forward {:.2f} ms, router sync {:.2f} ms, expert acquire {:.2f} ms",
                       j["gpu_forward_ms_per_token"].get<double>(), j["gpu_sync_ms_per_token"].get<double>(),
                       j["gpu_acquire_ms_per_token"].get<double>());
  out += format_gpu_phases(j);
  if (j.contains("vram_hit_rate"))
    out += fmt::format(" | VRAM {} ({} slots), hit rate {:.3f}, copied {} per token, copy waits {:.2f} per token",
                       format_bytes(j["vram_budget_bytes"].get<uint64_t>()), j["vram_slots"].get<uint64_t>(),
                       j["vram_hit_rate"].get<double>(), format_bytes(uint64_t(j["vram_copied_bytes_per_token"].get<double>())),
                       j["vram_copy_waits_per_token"].get<double>());
  if (g.misses) {
    const MissReport& m = *g.misses;
    out += " | " + format_miss_counts({m.waited, m.on_cpu, m.tokens_waited, m.tokens_on_cpu});
    out += fmt::format(" (link {:.1f} GB/s + {:.0f} us, CPU expert {:.2f} ms + {:.2f} ms/token)", m.link_bytes_per_s / 1e9,
                       m.link_latency_s * 1e6, m.cpu_fixed_s * 1e3, m.cpu_per_token_s * 1e3);
  }
  return out + "\n";
}

}  // namespace

std::string format_gpu_phases(const nlohmann::json& j) {
  if (!j.contains("gpu_phases")) return {};
  std::vector<std::pair<double, std::string>> ph;
  double total = 0;
  for (const auto& p : j["gpu_phases"]) {
    ph.emplace_back(p["ms_per_step"].get<double>(), p["phase"].get<std::string>());
    total += ph.back().first;
  }
  std::sort(ph.rbegin(), ph.rend());
  std::string out = fmt::format(" | device ms per decode step, eager ({:.3f} in all):", total);
  for (const auto& [ms, name] : ph) out += fmt::format(" {} {:.3f} ({:.0f}%)", name, ms, total > 0 ? 100.0 * ms / total : 0.0);
  return out;
}

std::string SessionStats::format(uint64_t tokens) const {
  std::string out;
  if (ram) out += format_tier_stats(*ram, tokens);
  out += format_prefetch(prefetch, prefetch_json(tokens));
  if (gpu) out += format_gpu(*gpu, gpu_json(tokens, 0.0));
  const ProcessMemory pm = read_process_memory();
  out += fmt::format("process: rss {}, peak rss {}\n", format_bytes(pm.rss_bytes), format_bytes(pm.peak_rss_bytes));
  return out;
}

}  // namespace moe
