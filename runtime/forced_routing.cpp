#include "runtime/forced_routing.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <stdexcept>

#include "runtime/model.h"

namespace moe {

std::vector<double> RoutingStats::entropy() const { return usage_entropy(counts); }

namespace {

// Draws k distinct experts from `weights` (unnormalised), without replacement.
void draw_distinct(std::mt19937_64& rng, const std::vector<double>& weights, int k, int32_t* out) {
  std::vector<double> w = weights;
  for (int j = 0; j < k; ++j) {
    std::discrete_distribution<int> d(w.begin(), w.end());
    const int e = d(rng);
    out[j] = e;
    w[size_t(e)] = 0.0;
  }
}

}  // namespace

void ForcedRouting::draw(int64_t step, int layer, int n, int k, int32_t* ids) const {
  // A pure function of (seed, step, layer): an oracle can ask about steps not yet run.
  std::seed_seq ss{uint32_t(seed), uint32_t(seed >> 32), uint32_t(step), uint32_t(step >> 32), uint32_t(layer)};
  std::mt19937_64 rng(ss);
  for (int t = 0; t < n; ++t) draw_distinct(rng, weights[size_t(layer)], k, ids + t * k);
}

std::shared_ptr<const ForcedRouting> install_routing(InferenceEngine& engine, const std::string& spec, uint64_t seed,
                                                     RoutingStats* stats) {
  const ModelConfig& c = engine.model().cfg;
  const int E = c.router.n_experts;
  if (stats) {
    stats->counts.assign(size_t(c.n_layers), std::vector<int64_t>(size_t(E), 0));
    engine.add_routing_observer([stats](const RoutingEvent& ev) {
      for (int i = 0; i < ev.n_tokens * ev.top_k; ++i) ++stats->counts[size_t(ev.layer)][size_t(ev.experts[i])];
    });
  }
  if (spec == "natural") return nullptr;

  auto rng = std::make_shared<std::mt19937_64>(seed);
  if (spec == "uniform" || spec.rfind("zipf:", 0) == 0) {
    double s = 0;
    if (spec != "uniform") {
      try {
        s = std::stod(spec.substr(5));
      } catch (const std::exception&) {
        throw std::invalid_argument(fmt::format("--routing {}: expected zipf:S with a number S, e.g. zipf:1.1", spec));
      }
      if (!(s >= 0)) throw std::invalid_argument(fmt::format("--routing {}: S must be >= 0", spec));
    }
    // Per layer: popularity rank^-s over a random permutation of the experts.
    auto weights = std::make_shared<std::vector<std::vector<double>>>();
    for (int l = 0; l < c.n_layers; ++l) {
      std::vector<int> perm(static_cast<size_t>(E));
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), *rng);
      std::vector<double> w(static_cast<size_t>(E));
      for (int r = 0; r < E; ++r) w[size_t(perm[size_t(r)])] = std::pow(double(r + 1), -s);
      weights->push_back(w);
    }
    auto forced = std::make_shared<ForcedRouting>();
    forced->seed = seed;
    forced->weights = std::move(*weights);
    // Steps are counted the way the hooks see them: layers run in order within a pass.
    auto step = std::make_shared<std::pair<int64_t, int>>(-1, 1 << 30);
    engine.set_routing_override([forced, step](int layer, int n, int k, int32_t* ids, float* wts) {
      if (layer <= step->second) ++step->first;
      step->second = layer;
      forced->draw(step->first, layer, n, k, ids);
      for (int j = 0; j < n * k; ++j) wts[j] = 1.0f / float(k);
    });
    return forced;
  }
  if (spec.rfind("trace:", 0) == 0) {
    const std::string file = spec.substr(6);
    std::ifstream in(file);
    if (!in) throw std::invalid_argument(fmt::format("--routing trace: cannot open {}", file));
    // Per layer, the recorded expert sets in order; replay cycles when the run is longer.
    auto sets = std::make_shared<std::vector<std::vector<std::vector<int32_t>>>>(size_t(c.n_layers));
    std::string line;
    int64_t lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      if (line.empty()) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception&) {
        throw std::invalid_argument(fmt::format("{}:{}: not a JSON object", file, lineno));
      }
      if (j.contains("format")) continue;  // the header line of a `moe run --trace` file
      const int layer = j.value("layer", -1);
      if (layer < 0 || layer >= c.n_layers || !j.contains("experts") || !j["experts"].is_array())
        throw std::invalid_argument(fmt::format("{}:{}: needs \"layer\" in [0, {}) and \"experts\"", file, lineno, c.n_layers));
      try {
        // One token per line ([ids]) or a whole step per line ([[ids] per token], docs/trace-format.md).
        const nlohmann::json& ex = j["experts"];
        if (!ex.empty() && ex[0].is_array())
          for (const auto& row : ex) (*sets)[size_t(layer)].push_back(row.get<std::vector<int32_t>>());
        else
          (*sets)[size_t(layer)].push_back(ex.get<std::vector<int32_t>>());
      } catch (const nlohmann::json::exception&) {
        throw std::invalid_argument(fmt::format("{}:{}: \"experts\" must hold expert ids", file, lineno));
      }
    }
    auto cursor = std::make_shared<std::vector<size_t>>(size_t(c.n_layers), 0);
    engine.set_routing_override([sets, cursor, E, file](int layer, int n, int k, int32_t* ids, float* wts) {
      auto& s = (*sets)[size_t(layer)];
      if (s.empty()) return;  // layer not in the trace: keep the natural choice
      for (int t = 0; t < n; ++t) {
        const auto& rec = s[(*cursor)[size_t(layer)]++ % s.size()];
        if (int(rec.size()) < k)
          throw std::invalid_argument(fmt::format("{}: layer {} records {} experts, the model needs {}", file, layer,
                                                  rec.size(), k));
        for (int j = 0; j < k; ++j) {
          if (rec[size_t(j)] < 0 || rec[size_t(j)] >= E)
            throw std::invalid_argument(fmt::format("{}: expert id {} out of range [0, {})", file, rec[size_t(j)], E));
          ids[t * k + j] = rec[size_t(j)];
          wts[t * k + j] = 1.0f / float(k);
        }
      }
    });
    return nullptr;
  }
  throw std::invalid_argument(
      fmt::format("--routing '{}': expected natural, uniform, zipf:S or trace:FILE", spec));
}

}  // namespace moe
