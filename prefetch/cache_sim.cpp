// The cache simulator's replay loop. A record (one layer-step) accesses each distinct expert
// its tokens chose, once: a loaded expert serves every token routed to it. Those experts are
// pinned while the record runs, as the engine pins a layer's experts during its FFN. After
// the accesses, a prefetch policy inserts the predictions recorded for the next layers.
#include "prefetch/cache_sim.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "prefetch/sim_replacement.h"
#include "storage/tier/budget.h"

namespace moe {

namespace {

// The tier's policies behind the simulator's interface: one instance per pool.
class PolicyReplacement final : public SimReplacement {
 public:
  PolicyReplacement(const std::string& name, int n_pools) {
    for (int p = 0; p < n_pools; ++p) pools_.push_back(make_policy(name));
  }
  void on_insert(int pool, ExpertKey k, size_t pos) override {
    if (pos == SIZE_MAX) pools_[size_t(pool)]->on_prefetch_insert(k);
    else pools_[size_t(pool)]->on_insert(k);
  }
  void on_access(int pool, ExpertKey k, size_t) override { pools_[size_t(pool)]->on_access(k); }
  void on_evict(int pool, ExpertKey k) override { pools_[size_t(pool)]->on_evict(k); }
  std::optional<ExpertKey> choose_victim(int pool, const std::function<bool(ExpertKey)>& evictable) override {
    return pools_[size_t(pool)]->choose_victim(evictable);
  }

 private:
  std::vector<std::unique_ptr<EvictionPolicy>> pools_;
};

// Distinct experts of a record in first-use order (token-major, best first).
std::vector<int32_t> distinct_experts(const TraceRecord& r) {
  std::vector<int32_t> out;
  for (int32_t e : r.experts)
    if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
  return out;
}

// Index of the record of the same step at the d-th MoE layer after record i's, or -1.
int64_t record_ahead(const Trace& t, const std::vector<int>& moe_layers, const std::vector<int>& ordinal, size_t i,
                     int d) {
  const TraceRecord& r = t.records[i];
  const int target_ord = ordinal[size_t(r.layer)] + d;
  if (target_ord >= int(moe_layers.size())) return -1;
  const int target = moe_layers[size_t(target_ord)];
  for (size_t j = i + 1; j < t.records.size() && t.records[j].step == r.step && t.records[j].layer <= target; ++j)
    if (t.records[j].layer == target) return int64_t(j);
  return -1;  // that layer-step was not recorded
}

struct Capacity {
  bool per_layer = true;
  std::vector<uint64_t> cap;  // [pool] in experts (per layer) or bytes (global)
};

Capacity check_options(const Trace& t, const SimOptions& o, bool prefetch) {
  const TraceHeader& h = t.header;
  const int set = int(o.cache_per_layer != 0) + int(o.cache_frac != 0) + int(o.cache_bytes != 0);
  if (set == 0) throw std::invalid_argument("no cache capacity: set one of cache_per_layer, cache_frac, cache_bytes");
  if (set > 1)
    throw std::invalid_argument("several cache capacities: set only one of cache_per_layer, cache_frac, cache_bytes");
  Capacity c;
  if (o.cache_per_layer != 0 || o.cache_frac != 0) {
    if (o.cache_per_layer < 0)
      throw std::invalid_argument(fmt::format("cache_per_layer {} is negative", o.cache_per_layer));
    if (o.cache_per_layer > 0 && o.cache_per_layer < h.top_k)
      throw std::invalid_argument(fmt::format(
          "a cache of {} experts per layer is smaller than top_k {}: one step needs top_k experts of a layer resident",
          o.cache_per_layer, h.top_k));
    if (o.cache_frac != 0 && !(o.cache_frac > 0 && o.cache_frac <= 1))
      throw std::invalid_argument(fmt::format("cache_frac {} must be above 0 and at most 1", o.cache_frac));
    for (int l = 0; l < h.n_layers; ++l) c.cap.push_back(uint64_t(cache_experts(h, o, l)));
  } else {
    c.per_layer = false;
    uint64_t need = 0;
    int need_layer = 0;
    for (int l = 0; l < h.n_layers; ++l) {
      if (h.n_experts[size_t(l)] == 0) continue;
      const uint64_t b = h.expert_bytes[size_t(l)];
      if (b == 0)
        throw std::invalid_argument(
            fmt::format("cache_bytes needs expert sizes, but the trace header's expert_bytes is 0 for layer {}; "
                        "use a per-layer capacity (cache_per_layer or cache_frac)",
                        l));
      if (uint64_t(h.top_k) * b > need) {
        need = uint64_t(h.top_k) * b;
        need_layer = l;
      }
    }
    if (o.cache_bytes < need)
      throw std::invalid_argument(
          fmt::format("cache of {} ({} bytes) is smaller than top_k {} experts of layer {} ({} bytes): one step needs "
                      "them resident",
                      format_bytes(o.cache_bytes), o.cache_bytes, h.top_k, need_layer, need));
    c.cap.push_back(o.cache_bytes);
  }
  if (prefetch) {
    if (!has_predictions(t))
      throw std::invalid_argument(
          fmt::format("policy {} needs predictions, but the trace has none (predictor \"{}\")", o.policy, h.predictor));
    if (o.lookahead < 1 || o.lookahead > h.lookahead)
      throw std::invalid_argument(
          fmt::format("lookahead {} must be between 1 and the trace's lookahead {}", o.lookahead, h.lookahead));
    if (o.prefetch_k < 0) throw std::invalid_argument(fmt::format("prefetch_k {} is negative", o.prefetch_k));
  }
  return c;
}

// Resident experts and their pools' fill; eviction goes through a SimReplacement.
class Cache {
 public:
  Cache(const TraceHeader& h, Capacity c, SimReplacement& repl, SimResult& res)
      : h_(h), cap_(std::move(c)), used_(cap_.cap.size(), 0), repl_(repl), res_(res) {}

  int pool(int layer) const { return cap_.per_layer ? layer : 0; }
  uint64_t bytes(int layer) const { return h_.expert_bytes[size_t(layer)]; }
  uint64_t cost(int layer) const { return cap_.per_layer ? 1 : bytes(layer); }

  // nullptr when absent; else whether it was prefetched and is not yet used.
  bool* find(ExpertKey k) {
    auto it = resident_.find(k.packed());
    return it == resident_.end() ? nullptr : &it->second;
  }

  // Makes room for one expert of `layer` and inserts it; false (nothing inserted) when the
  // pool is full of experts that may not be evicted.
  bool insert(ExpertKey k, bool speculative, size_t pos, const std::function<bool(ExpertKey)>& evictable) {
    const int p = pool(k.layer);
    uint64_t& used = used_[size_t(p)];
    while (used + cost(k.layer) > cap_.cap[size_t(p)]) {
      const std::optional<ExpertKey> v = repl_.choose_victim(p, evictable);
      if (!v) return false;
      evict(*v);
    }
    used += cost(k.layer);
    resident_[k.packed()] = speculative;
    repl_.on_insert(p, k, pos);
    return true;
  }

 private:
  void evict(ExpertKey k) {
    auto it = resident_.find(k.packed());
    if (it->second) {  // prefetched and never used
      ++res_.prefetch_wasted;
      res_.wasted_bytes += bytes(k.layer);
    }
    resident_.erase(it);
    used_[size_t(pool(k.layer))] -= cost(k.layer);
    repl_.on_evict(pool(k.layer), k);
  }

  const TraceHeader& h_;
  Capacity cap_;
  std::vector<uint64_t> used_;                   // [pool] experts or bytes
  std::unordered_map<uint64_t, bool> resident_;  // packed key -> speculative
  SimReplacement& repl_;
  SimResult& res_;
};

}  // namespace

int cache_experts(const TraceHeader& h, const SimOptions& o, int layer) {
  const int n = h.n_experts[size_t(layer)];
  if (n == 0 || o.cache_bytes != 0) return 0;
  if (o.cache_per_layer > 0) return o.cache_per_layer;
  return std::max(h.top_k, int(std::lround(o.cache_frac * n)));
}

bool has_predictions(const Trace& t) {
  for (const TraceRecord& r : t.records)
    for (const auto& p : r.predicted)
      if (!p.empty()) return true;
  return false;
}

SimResult simulate(const Trace& t, const SimOptions& o) {
  const TraceHeader& h = t.header;
  const std::string base = o.policy.substr(0, o.policy.find('+'));
  const std::vector<std::string> names = sim_policy_names();
  if (std::find(names.begin(), names.end(), o.policy) == names.end())
    throw std::invalid_argument(fmt::format("unknown policy '{}'; valid: {}", o.policy, fmt::join(names, ", ")));
  const bool prefetch = o.policy.ends_with("+prefetch");
  Capacity cap = check_options(t, o, prefetch);
  const int n_pools = int(cap.cap.size());

  std::vector<int> moe_layers, ordinal(size_t(h.n_layers), -1);
  for (int l = 0; l < h.n_layers; ++l)
    if (h.n_experts[size_t(l)] > 0) {
      ordinal[size_t(l)] = int(moe_layers.size());
      moe_layers.push_back(l);
    }

  std::vector<std::vector<int32_t>> uses;  // [records] distinct experts
  std::vector<ExpertKey> accesses;         // every access in replay order (Belady's future)
  uses.reserve(t.records.size());
  for (const TraceRecord& r : t.records) {
    uses.push_back(distinct_experts(r));
    for (int32_t e : uses.back()) accesses.push_back({r.layer, e});
  }
  std::unique_ptr<SimReplacement> repl =
      base == "belady" ? make_belady_replacement(accesses, n_pools) : make_policy_replacement(base, n_pools);

  SimResult res;
  Cache cache(h, std::move(cap), *repl, res);
  const int prefetch_k = o.prefetch_k > 0 ? o.prefetch_k : h.top_k;
  std::vector<ExpertKey> pinned;  // the current record's experts, then the ones this round's predictions want
  const std::function<bool(ExpertKey)> evictable = [&](ExpertKey k) {
    return std::find(pinned.begin(), pinned.end(), k) == pinned.end();
  };
  size_t pos = 0;
  for (size_t i = 0; i < t.records.size(); ++i) {
    const TraceRecord& r = t.records[i];
    if (i == 0 || t.records[i - 1].step != r.step) res.tokens += uint64_t(r.n_tokens());
    pinned.clear();
    for (int32_t e : uses[i]) pinned.push_back({r.layer, e});
    for (int32_t e : uses[i]) {
      const ExpertKey k{r.layer, e};
      ++res.accesses;
      if (bool* speculative = cache.find(k)) {
        ++res.hits;
        if (*speculative) {  // the prefetch paid off
          ++res.prefetch_used;
          *speculative = false;
        }
        repl->on_access(cache.pool(k.layer), k, pos);
      } else {
        ++res.misses;
        res.miss_bytes += cache.bytes(k.layer);
        // A step whose experts exceed the pool streams the rest through uncached.
        cache.insert(k, false, pos, evictable);
      }
      ++pos;
    }
    if (!prefetch) continue;
    for (int d = 1; d <= o.lookahead; ++d) {
      const int64_t j = record_ahead(t, moe_layers, ordinal, i, d);
      if (j < 0) continue;
      const TraceRecord& target = t.records[size_t(j)];
      if (int(target.predicted.size()) < d) continue;
      const std::vector<int32_t>& ranked = target.predicted[size_t(d - 1)];
      for (size_t n = 0; n < std::min(ranked.size(), size_t(prefetch_k)); ++n) {
        const ExpertKey k{target.layer, ranked[n]};
        if (cache.find(k)) {
          pinned.push_back(k);  // wanted: a later prefetch of this round must not evict it
          continue;
        }
        if (!cache.insert(k, true, SIZE_MAX, evictable)) continue;  // no room that may be given up
        pinned.push_back(k);
        ++res.prefetches;
        res.prefetch_bytes += cache.bytes(k.layer);
      }
    }
  }
  return res;
}

std::vector<std::string> sim_policy_names() {
  std::vector<std::string> out = policy_names();
  for (const std::string& p : policy_names()) out.push_back(p + "+prefetch");
  out.push_back("belady");
  return out;
}

std::unique_ptr<SimReplacement> make_policy_replacement(const std::string& policy, int n_pools) {
  return std::make_unique<PolicyReplacement>(policy, n_pools);
}

std::vector<RecallAt> predictor_recall(const Trace& t, std::span<const int> ks) {
  const TraceHeader& h = t.header;
  std::vector<RecallAt> out;
  std::vector<uint8_t> actual;  // [n_experts] 1 if in the record's union, 2 once counted
  for (int d = 1; d <= h.lookahead; ++d)
    for (int k : ks) {
      double sum = 0;
      uint64_t samples = 0;
      for (const TraceRecord& r : t.records) {
        if (int(r.predicted.size()) < d || r.predicted[size_t(d - 1)].empty()) continue;
        actual.assign(size_t(h.n_experts[size_t(r.layer)]), 0);
        size_t n_actual = 0;
        for (int32_t e : r.experts) n_actual += actual[size_t(e)] == 0, actual[size_t(e)] = 1;
        const auto& ranked = r.predicted[size_t(d - 1)];
        size_t found = 0;
        for (size_t n = 0; n < std::min(ranked.size(), size_t(std::max(k, 0))); ++n)
          if (actual[size_t(ranked[n])] == 1) ++found, actual[size_t(ranked[n])] = 2;  // a repeated id counts once
        sum += double(found) / double(n_actual);
        ++samples;
      }
      out.push_back({d, k, samples ? sum / double(samples) : 0.0, samples});
    }
  return out;
}

}  // namespace moe
