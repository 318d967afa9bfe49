// moe trace-sim: replays a routing trace (`moe run --trace`) against expert-cache policies
// and prints, side by side, the hit rate and bytes moved per token each would give, then
// how well the recorded predictor ranked the experts. No model is loaded. docs/trace-sim.md.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>

#include "prefetch/cache_sim.h"
#include "storage/byte_size.h"
#include "tools/commands.h"

namespace moe::cli {

namespace {

struct Opts {
  std::string trace, cache_bytes, policy = "all";
  int cache_per_layer = 0, prefetch_k = 0, lookahead = 0;
  double cache_frac = 0;
  bool json = false;
  CLI::Option *per_layer_opt = nullptr, *bytes_opt = nullptr, *frac_opt = nullptr;
};

const std::vector<std::string> kPolicies = sim_policy_names();

uint64_t all_expert_bytes(const TraceHeader& h) {
  uint64_t total = 0;
  for (int l = 0; l < h.n_layers; ++l) total += uint64_t(h.n_experts[size_t(l)]) * h.expert_bytes[size_t(l)];
  return total;
}

bool sizes_known(const TraceHeader& h) {
  for (int l = 0; l < h.n_layers; ++l)
    if (h.n_experts[size_t(l)] > 0 && h.expert_bytes[size_t(l)] == 0) return false;
  return true;
}

// The capacity flags into SimOptions, with errors that name the flags.
SimOptions capacity_of(const Opts& o, const TraceHeader& h) {
  const int set = int(o.per_layer_opt->count() > 0) + int(o.bytes_opt->count() > 0) + int(o.frac_opt->count() > 0);
  if (set != 1)
    throw std::invalid_argument(fmt::format("{}: --cache-per-layer N, --cache-bytes SIZE|PCT% or --cache-frac F",
                                            set ? "give only one cache capacity" : "a cache capacity is required"));
  SimOptions s;
  if (o.per_layer_opt->count()) {
    if (o.cache_per_layer < 1)
      throw std::invalid_argument(
          fmt::format("--cache-per-layer {}: expected a positive number of experts", o.cache_per_layer));
    s.cache_per_layer = o.cache_per_layer;
  } else if (o.frac_opt->count()) {
    if (!(o.cache_frac > 0 && o.cache_frac <= 1))
      throw std::invalid_argument(
          fmt::format("--cache-frac {}: expected a fraction above 0 and at most 1", o.cache_frac));
    s.cache_frac = o.cache_frac;
  } else {
    if (!sizes_known(h))
      throw std::invalid_argument(
          "--cache-bytes needs expert sizes, but the trace header has expert_bytes 0 for some MoE layer; "
          "use --cache-per-layer or --cache-frac");
    try {
      s.cache_bytes = parse_budget(o.cache_bytes, all_expert_bytes(h));
    } catch (const std::invalid_argument& e) {
      std::string what = e.what();  // parse_budget speaks of the flag it was written for
      if (what.rfind("--ram-budget", 0) == 0) what.replace(0, 12, "--cache-bytes");
      throw std::invalid_argument(what);
    }
  }
  return s;
}

std::string describe_cache(const TraceHeader& h, const SimOptions& s) {
  if (s.cache_bytes)
    return fmt::format("{} shared by all layers ({:.1f}% of the {} of experts)", format_bytes(s.cache_bytes),
                       100.0 * double(s.cache_bytes) / double(std::max<uint64_t>(all_expert_bytes(h), 1)),
                       format_bytes(all_expert_bytes(h)));
  int lo = INT32_MAX, hi = 0, n_lo = 0;
  for (int l = 0; l < h.n_layers; ++l)
    if (h.n_experts[size_t(l)] > 0) {
      const int c = cache_experts(h, s, l);
      if (c < lo) {
        lo = c;
        n_lo = h.n_experts[size_t(l)];
      }
      hi = std::max(hi, c);
    }
  if (lo == hi) return fmt::format("{} experts per MoE layer (of {})", lo, n_lo);
  return fmt::format("{}-{} experts per MoE layer", lo, hi);
}

nlohmann::json result_json(const std::string& policy, const SimResult& r) {
  return {{"policy", policy},
          {"accesses", r.accesses},
          {"hits", r.hits},
          {"misses", r.misses},
          {"hit_rate", r.hit_rate()},
          {"loads_per_token", r.loads_per_token()},
          {"miss_bytes", r.miss_bytes},
          {"prefetch_bytes", r.prefetch_bytes},
          {"bytes_per_token", r.bytes_per_token()},
          {"prefetches", r.prefetches},
          {"prefetch_used", r.prefetch_used},
          {"prefetch_wasted", r.prefetch_wasted},
          {"prefetch_precision", r.prefetches ? nlohmann::json(r.prefetch_precision()) : nlohmann::json(nullptr)},
          {"wasted_bytes", r.wasted_bytes},
          {"wasted_bytes_per_token", r.wasted_bytes_per_token()}};
}

int run(const Opts& o) {
  const Trace t = read_trace(o.trace);
  const TraceHeader& h = t.header;
  if (t.records.empty()) throw std::runtime_error(fmt::format("{}: the trace has a header but no records", o.trace));
  const bool predictions = has_predictions(t);

  std::vector<std::string> policies;
  if (o.policy == "all") {
    for (const std::string& p : kPolicies)
      if (predictions || p.find("+prefetch") == std::string::npos) policies.push_back(p);
  } else if (std::find(kPolicies.begin(), kPolicies.end(), o.policy) != kPolicies.end()) {
    policies.push_back(o.policy);
  } else {
    throw std::invalid_argument(
        fmt::format("--policy '{}': expected {} or all", o.policy, fmt::join(kPolicies, ", ")));
  }
  SimOptions s = capacity_of(o, h);
  s.prefetch_k = o.prefetch_k;
  s.lookahead = o.lookahead > 0 ? o.lookahead : std::max(h.lookahead, 1);
  if (o.prefetch_k < 0)
    throw std::invalid_argument(fmt::format("--prefetch-k {}: expected 0 (top_k) or more", o.prefetch_k));

  std::vector<std::pair<std::string, SimResult>> results;
  for (const std::string& p : policies) {
    s.policy = p;
    results.emplace_back(p, simulate(t, s));
  }
  std::vector<int> ks = {h.top_k, 2 * h.top_k};
  const std::vector<RecallAt> recall = predictor_recall(t, ks);

  std::set<int64_t> steps;
  for (const TraceRecord& r : t.records) steps.insert(r.step);
  int moe_layers = 0;
  for (int n : h.n_experts) moe_layers += n > 0;
  const uint64_t tokens = results.front().second.tokens;
  const bool bytes = sizes_known(h);
  const int prefetch_k = s.prefetch_k > 0 ? s.prefetch_k : h.top_k;

  if (o.json) {
    nlohmann::json j = {{"trace", o.trace},         {"model", h.model},           {"predictor", h.predictor},
                        {"n_layers", h.n_layers},   {"moe_layers", moe_layers},   {"top_k", h.top_k},
                        {"lookahead", h.lookahead}, {"steps", steps.size()},      {"layer_steps", t.records.size()},
                        {"tokens", tokens},         {"expert_sizes_known", bytes}};
    nlohmann::json cache = {{"kind", s.cache_bytes ? "global" : "per_layer"}};
    if (s.cache_bytes) {
      cache["bytes"] = s.cache_bytes;
    } else {
      std::vector<int> per_layer;
      for (int l = 0; l < h.n_layers; ++l) per_layer.push_back(cache_experts(h, s, l));
      cache["experts_per_layer"] = per_layer;
    }
    j["cache"] = cache;
    j["prefetch"] = {{"k", prefetch_k}, {"lookahead", s.lookahead}};
    j["policies"] = nlohmann::json::array();
    for (const auto& [p, r] : results) j["policies"].push_back(result_json(p, r));
    j["recall"] = nlohmann::json::array();
    for (const RecallAt& r : recall)
      j["recall"].push_back({{"lookahead", r.lookahead}, {"k", r.k}, {"recall", r.recall}, {"samples", r.samples}});
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }

  std::printf("%s", fmt::format("trace    {}: {} steps, {} tokens, {} layer-steps\n", o.trace, steps.size(), tokens,
                                t.records.size())
                        .c_str());
  std::printf("%s",
              fmt::format("model    {} ({} MoE layers of {}, top-{}); predictor {}, lookahead {}\n",
                          h.model.empty() ? "?" : h.model, moe_layers, h.n_layers, h.top_k, h.predictor, h.lookahead)
                  .c_str());
  std::printf("%s", fmt::format("cache    {}\n", describe_cache(h, s)).c_str());
  if (predictions)
    std::printf(
        "%s", fmt::format("prefetch top-{} of each prediction at lookahead 1..{}\n", prefetch_k, s.lookahead).c_str());
  auto per_token = [&](double b) { return bytes ? format_bytes(uint64_t(std::llround(b))) : std::string("-"); };
  std::printf("\n%-16s %9s %10s %12s %12s %10s %13s\n", "policy", "hit rate", "misses", "loads/token", "bytes/token",
              "precision", "wasted/token");
  for (const auto& [p, r] : results) {
    const bool pf = p.find("+prefetch") != std::string::npos;
    std::printf("%-16s %8.1f%% %10llu %12.2f %12s %10s %13s\n", p.c_str(), 100 * r.hit_rate(),
                (unsigned long long)r.misses, r.loads_per_token(), per_token(r.bytes_per_token()).c_str(),
                pf && r.prefetches ? fmt::format("{:.1f}%", 100 * r.prefetch_precision()).c_str() : "-",
                pf ? per_token(r.wasted_bytes_per_token()).c_str() : "-");
  }
  if (!bytes) std::printf("(the trace has no expert sizes: bytes are not counted)\n");
  if (!recall.empty()) {
    std::printf("\npredictor recall (share of a layer-step's experts among the top-k predicted)\n%-10s", "lookahead");
    for (int k : ks) std::printf(" %8s", fmt::format("k={}", k).c_str());
    std::printf(" %12s\n", "layer-steps");
    for (size_t i = 0; i < recall.size(); i += ks.size()) {
      std::printf("%-10d", recall[i].lookahead);
      for (size_t j = 0; j < ks.size(); ++j)
        std::printf(" %8s", recall[i].samples ? fmt::format("{:.3f}", recall[i + j].recall).c_str() : "-");
      std::printf(" %12llu\n", (unsigned long long)recall[i].samples);
    }
  }
  return 0;
}

}  // namespace

Runner add_trace_sim(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("trace-sim",
                                   "Replay a routing trace against expert-cache policies (hit rate, bytes per token)");
  c->add_option("--trace", o->trace, "Routing trace (JSON lines, docs/trace-format.md)")->required();
  o->per_layer_opt = c->add_option("--cache-per-layer", o->cache_per_layer, "Every MoE layer caches this many experts");
  o->bytes_opt = c->add_option("--cache-bytes", o->cache_bytes,
                               "One cache for all layers: a size (6GiB, 512MiB) or a percentage of all experts (25%)");
  o->frac_opt = c->add_option("--cache-frac", o->cache_frac,
                              "Every MoE layer caches this fraction of its experts (0 < F <= 1, at least top_k)");
  c->add_option("--policy", o->policy, fmt::format("{} | all", fmt::join(kPolicies, " | ")))->default_str("all");
  c->add_option("--prefetch-k", o->prefetch_k, "Experts prefetched per predicted layer-step (default: top_k)");
  c->add_option("--lookahead", o->lookahead, "Use predictions at distances 1..D (default: the trace's lookahead)");
  c->add_flag("--json", o->json, "Print one JSON object instead of tables");
  return [o] { return run(*o); };
}

}  // namespace moe::cli
