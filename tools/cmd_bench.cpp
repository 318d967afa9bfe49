// moe bench: prefill and decode speed of a model, with the expert tier's figures, as text
// or one JSON object (keys documented in docs/bench.md).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <map>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "runtime/engine.h"
#include "runtime/pack_model.h"
#include "runtime/sampler.h"
#include "storage/io/disk_bandwidth.h"
#include "storage/tier/budget.h"
#include "storage/tier/process_memory.h"
#include "tools/bench_routing.h"
#include "tools/commands.h"
#include "tools/progress.h"
#include "tools/device_flags.h"
#include "prefetch/vram_target.h"
#include "tools/oracle_predictor.h"
#include "tools/prefetch_flags.h"
#include "tools/storage_flags.h"

namespace moe::cli {

namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// Bytes one decode token must read at least: every dense weight it uses plus its routed
// experts (top-k per MoE layer, at the model's average expert size). The bandwidth bound.
double bytes_per_token(const Model& m) {
  const ModelConfig& c = m.cfg;
  double b = double(m.lm_head.bytes());
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = m.layers[size_t(l)];
    b += double(L.attn.q.bytes() + L.attn.k.bytes() + L.attn.v.bytes() + L.attn.o.bytes());
    if (L.kind == FfnKind::Dense) {
      b += double(L.dense.gate.bytes() + L.dense.up.bytes() + L.dense.down.bytes());
    } else {
      b += double(L.router.bytes() + L.shared.gate.bytes() + L.shared.up.bytes() + L.shared.down.bytes());
      const ExpertWeights w = m.experts->acquire(l, 0);
      m.experts->release(l, 0);
      b += double(c.router.top_k) * double(w.bytes());
    }
  }
  return b;
}

// Non-expert weight bytes (resident whatever the expert budget).
uint64_t dense_bytes(const Model& m) {
  uint64_t b = 0;
  for (const DenseTensor& t : dense_tensors(m)) b += uint64_t(t.view.bytes());
  return b;
}

// Reads every expert of the pack into the RAM tier (one batch per layer), with progress; warns
// when the RAM budget could not keep them all.
void warm_ram_tier(OpenModel& om) {
  if (!om.tier) return;
  const ExpertCatalog& cat = om.tier->catalog();
  Progress bar("warm RAM", total_expert_bytes(cat));
  for (int l = 0; l < cat.n_layers(); ++l) {
    std::vector<int> ids(static_cast<size_t>(cat.n_experts(l)));
    if (ids.empty()) continue;
    std::iota(ids.begin(), ids.end(), 0);
    std::vector<ExpertWeights> w(ids.size());
    om.tier->acquire_many(l, ids, w.data());
    for (int e : ids) {
      bar.add(expert_cache_bytes(cat.record(l, e)));
      om.tier->release(l, e);
    }
  }
  bar.finish();
  if (const uint64_t ev = om.tier->stats().evictions; ev > 0)
    std::fprintf(stderr, "warning: --warm-ram: the RAM budget could not hold every expert (%llu evicted); raise --ram-budget\n",
                 static_cast<unsigned long long>(ev));
}

}  // namespace

namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t a = 0;
  while (a <= s.size()) {
    const size_t b = std::min(s.find(',', a), s.size());
    if (b > a) out.push_back(s.substr(a, b - a));
    a = b + 1;
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

Runner add_bench(CLI::App& app) {
  struct Opts {
    std::string model, routing = "natural";
    int prompt_len = 128, gen_len = 64, warmup = 4, threads = 0, rounds = 1;
    uint64_t seed = 1;
    bool json = false, io_only = false, warm_ram = false;
    double io_seconds = 6;
    StorageFlags storage;
    PrefetchFlags prefetch;
    DeviceFlags device;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("bench", "Measure prefill/decode speed, expert-cache behaviour and memory");
  c->add_option("--model,-m", o->model, "Hugging Face model directory or .moepack file")->required();
  c->add_option("--prompt-len", o->prompt_len, "Prompt tokens (random ids, seeded)")->capture_default_str();
  c->add_option("--gen-len", o->gen_len, "Timed decode tokens")->capture_default_str();
  c->add_option("--warmup", o->warmup, "Untimed decode tokens between prefill and the timed decode")->capture_default_str();
  c->add_option("--routing", o->routing, "natural | uniform | zipf:S | trace:FILE (forced expert choice)")->capture_default_str();
  c->add_option("--seed", o->seed, "Seed for prompt tokens and forced routing")->capture_default_str();
  c->add_option("--threads,-t", o->threads, "CPU threads (0 = physical cores)");
  c->add_option("--rounds", o->rounds, "Repeat every --prefetch variant this many times, alternating (medians reported)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  c->add_flag("--json", o->json, "Print one JSON object");
  c->add_flag("--warm-ram", o->warm_ram,
              "Read every expert into the RAM tier once before measuring, and keep it warm across variants (the "
              "RAM budget must hold them all): measures the tiers above RAM");
  c->add_flag("--io-only", o->io_only, "Only measure the disk's O_DIRECT read bandwidth on the pack file");
  c->add_option("--io-seconds", o->io_seconds, "Duration of --io-only")->capture_default_str();
  add_storage_flags(c, o->storage);
  add_prefetch_flags(c, o->prefetch, /*list=*/true);
  add_device_flags(c, o->device);
  return [o] {
    if (o->io_only) {
      const DiskBandwidth d = measure_disk_bandwidth(o->model, o->io_seconds);
      const nlohmann::json j = {{"disk_seq_bytes_per_s", d.seq_bytes_per_s}, {"disk_rand4k_bytes_per_s", d.rand_bytes_per_s},
                                {"disk_rand4k_iops", d.rand_iops}, {"o_direct", d.direct}};
      std::printf("%s\n", o->json ? j.dump().c_str() : j.dump(2).c_str());
      return 0;
    }
    if (o->prompt_len < 1 || o->gen_len < 1) throw std::invalid_argument("--prompt-len and --gen-len must be >= 1");
    const std::vector<std::string> modes = split_list(o->prefetch.mode);
    for (const std::string& v : modes)
      if (v != "auto" && v != "off" && v != "gate" && v != "history" && v != "blend" && v != "oracle")
        throw std::invalid_argument(fmt::format("--prefetch: unknown mode '{}'; give auto, off, gate, history, blend or "
                                                "oracle, or a comma-separated list of them to compare", v));
    if (modes.empty()) throw std::invalid_argument("--prefetch: give a mode, or a comma-separated list of modes");
    // Variants: every --vram-budget (a comma-separated list compares several) with every mode;
    // named by the mode alone unless several budgets are compared ("25%/gate").
    const std::vector<std::string> budgets = o->device.vram_budget.empty() ? std::vector<std::string>{""}
                                                                           : split_list(o->device.vram_budget);
    std::vector<std::string> variants;
    std::map<std::string, std::pair<std::string, std::string>> parts;  // name -> (budget, mode)
    for (const std::string& b : budgets)
      for (const std::string& mo : modes) {
        const std::string name = budgets.size() > 1 ? b + "/" + mo : mo;
        variants.push_back(name);
        parts[name] = {b, mo};
      }
    auto om = open_model(o->model, o->storage);
    const Model& m = om->model;
    const double bpt = bytes_per_token(m);
    LinkCalibration link;  // the GPU's host->device copies, measured once (first GPU measurement)
    if (o->warm_ram) warm_ram_tier(*om);

    // One measurement: a cold tier (unless --warm-ram), a fresh engine and sequence, prefill,
    // warm-up, timed decode.
    auto measure = [&](const std::string& name, int round) {
      const auto& [budget, variant] = parts.at(name);
      if (om->tier && !o->warm_ram) om->tier->clear();
      DeviceFlags dflags = o->device;
      dflags.vram_budget = budget;
      EngineHandle eh = make_engine(m, dflags, o->threads, o->storage.policy, round == 0 && name == variants[0]);
      InferenceEngine& engine = *eh.engine;
      if (eh.copy && link.bytes_per_s == 0) link = measure_pcie(eh);
      // On the GPU with a partial budget, prefetches go to the expert slots (the RAM -> GPU hop).
      std::unique_ptr<VramPrefetchTarget> vram_target;
      if (eh.vram && !eh.vram->fully_resident()) vram_target = std::make_unique<VramPrefetchTarget>(*eh.vram);
      RoutingStats routing;
      const auto forced = install_routing(engine, o->routing, o->seed, &routing);
      const std::string mode = variant != "auto" ? variant : vram_target ? "gate" : resolve_prefetch_mode(*om, o->prefetch);
      std::unique_ptr<Predictor> oracle;
      if (mode == "oracle") {
        if (!forced)
          throw std::invalid_argument("--prefetch oracle knows the future only of forced routing: add --routing uniform or "
                                      "--routing zipf:S");
        oracle = std::make_unique<OraclePredictor>(forced, experts_per_layer(m));
      }
      PrefetchFlags pflags = o->prefetch;
      if (!pflags.trace.empty() && (variants.size() > 1 || o->rounds > 1)) {  // one trace per measurement
        const std::filesystem::path t(pflags.trace);
        std::string tag = name;
        std::replace(tag.begin(), tag.end(), '/', '-');
        pflags.trace = (t.parent_path() / fmt::format("{}-{}-r{}{}", t.stem().string(), tag, round,
                                                      t.extension().string())).string();
      }
      auto pf = attach_prefetch(*om, o->model, engine, pflags, mode == "oracle" ? "off" : mode, std::move(oracle),
                                vram_target.get());
      if (om->tier) om->tier->reset_stats();

      std::mt19937_64 rng(o->seed);
      std::vector<int32_t> prompt(size_t(o->prompt_len));
      for (auto& t : prompt) t = int32_t(rng() % uint64_t(m.cfg.vocab_size));
      const SeqId s = engine.create_sequence();
      auto t0 = clock_type::now();
      BatchItem pre{s, prompt, false};
      std::vector<float> logits = engine.forward({&pre, 1});
      const double prefill_s = since(t0);
      const TierStats prefill_stats = om->tier ? om->tier->stats() : TierStats{};

      int32_t next = argmax(logits);
      auto step = [&] {
        BatchItem d{s, std::span(&next, 1), false};
        logits = engine.forward({&d, 1});
        next = argmax(logits);
      };
      for (int i = 0; i < o->warmup; ++i) step();
      if (pf) {
        pf->drain();
        pf->reset_stats();
      }
      if (om->tier) om->tier->reset_stats();
      if (eh.vram) eh.vram->reset_stats();
      if (eh.times) *eh.times = {};
      if (eh.misses) *eh.misses = {};
      for (auto& row : routing.counts) std::fill(row.begin(), row.end(), 0);
      t0 = clock_type::now();
      for (int i = 0; i < o->gen_len; ++i) step();
      const double decode_s = since(t0);
      if (pf) pf->flush_trace();

      const double decode_tps = o->gen_len / decode_s;
      const ProcessMemory pm = read_process_memory();
      nlohmann::json j = {
          {"model", o->model},
          {"routing", o->routing},
          {"io", o->storage.io},
          {"policy", o->storage.policy},
          {"device", engine.backend()},
          {"threads", engine.threads()},
          {"prompt_len", o->prompt_len},
          {"gen_len", o->gen_len},
          {"prefill_tok_s", o->prompt_len / prefill_s},
          {"decode_tok_s", decode_tps},
          {"decode_bytes_per_token", bpt},
          {"decode_gb_s", bpt * decode_tps / 1e9},
          {"routing_entropy", routing.entropy()},
          {"routing_entropy_uniform", std::log(double(std::max(1, m.cfg.router.n_experts)))},
          {"peak_rss_bytes", pm.peak_rss_bytes},
          {"rss_bytes", pm.rss_bytes},
          {"kv_bytes", engine.kv_bytes()},
          {"dense_bytes", dense_bytes(m)},
      };
      if (om->tier) {
        const nlohmann::json t = tier_stats_json(om->tier->stats(), uint64_t(o->gen_len));
        for (const auto& [k, v] : t.items()) j[k] = v;
        j["prefill_disk_bytes"] = prefill_stats.total.disk_bytes();
        j["prefill_ram_hit_rate"] = prefill_stats.total.hit_rate();
      } else {
        j["ram_hit_rate"] = 1.0;
        j["disk_bytes_per_token"] = 0;
        j["stall_ms_per_token"] = 0.0;
      }
      j.update(prefetch_json(pf.get(), *om, uint64_t(o->gen_len)));
      j["prefetch"] = mode;
      if (!budget.empty()) j["vram_budget_flag"] = budget;
      if (eh.copy) j.update(gpu_json(eh, link, uint64_t(o->gen_len), decode_tps));
      return j;
    };

    auto line = [&](const nlohmann::json& j) {
      if (j.contains("vram_hit_rate"))
        return fmt::format("decode {:.2f} tok/s = {:.2f} GB/s of weights | VRAM budget {} ({:.0f}% of experts), hit rate "
                           "{:.3f}, copied {} per token, PCIe bound {:.2f} tok/s | prefetch {}",
                           j["decode_tok_s"].get<double>(), j["decode_gb_s"].get<double>(),
                           format_bytes(j["vram_budget_bytes"].get<uint64_t>()), 100.0 * j["vram_budget_share"].get<double>(),
                           j["vram_hit_rate"].get<double>(), format_bytes(uint64_t(j["vram_copied_bytes_per_token"].get<double>())),
                           j["pcie_bound_tok_s"].get<double>(), j["prefetch"].get<std::string>());
      return fmt::format("prefill {:.1f} tok/s | decode {:.2f} tok/s = {:.2f} GB/s of weights ({} per token) | RAM hit "
                         "rate {:.3f} | disk {} per token | stall {:.2f} ms/token | prefetch {} | peak RSS {}",
                         j["prefill_tok_s"].get<double>(), j["decode_tok_s"].get<double>(), j["decode_gb_s"].get<double>(),
                         format_bytes(uint64_t(bpt)), j["ram_hit_rate"].get<double>(),
                         format_bytes(uint64_t(j["disk_bytes_per_token"].get<double>())),
                         j["stall_ms_per_token"].get<double>(), j["prefetch"].get<std::string>(),
                         format_bytes(j["peak_rss_bytes"].get<uint64_t>()));
    };
    if (variants.size() == 1 && o->rounds == 1) {
      const nlohmann::json j = measure(variants[0], 0);
      std::printf("%s\n", o->json ? j.dump().c_str() : line(j).c_str());
      return 0;
    }
    // Variants alternate within each round, so drift (thermal, other load) hits all alike.
    nlohmann::json runs = nlohmann::json::array();
    for (int r = 0; r < o->rounds; ++r)
      for (const std::string& v : variants) {
        nlohmann::json j = measure(v, r);
        j["round"] = r;
        j["variant"] = v;
        if (!o->json) std::fprintf(stderr, "round %d %-8s %s\n", r, v.c_str(), line(j).c_str());
        runs.push_back(std::move(j));
      }
    nlohmann::json summary = nlohmann::json::array();
    const char* keys[] = {"decode_tok_s", "decode_gb_s", "stall_ms_per_token", "ram_hit_rate", "disk_bytes_per_token",
                          "prefetch_precision", "prefetch_recall", "prefetch_wasted_bytes_per_token", "vram_hit_rate",
                          "vram_copied_bytes_per_token", "pcie_bound_tok_s"};
    for (const std::string& v : variants) {
      nlohmann::json s = {{"variant", v}};
      for (const char* k : keys) {
        std::vector<double> xs;
        for (const auto& j : runs)
          if (j["variant"] == v && j.contains(k)) xs.push_back(j[k].get<double>());
        s[k] = median(xs);
      }
      summary.push_back(std::move(s));
    }
    if (o->json) {
      std::printf("%s\n", nlohmann::json{{"rounds", o->rounds}, {"summary", summary}, {"runs", runs}}.dump().c_str());
      return 0;
    }
    std::printf("%s\n", fmt::format("medians of {} rounds ({} decode tokens each, routing {})", o->rounds, o->gen_len,
                                     o->routing).c_str());
    std::printf("%-8s %10s %8s %12s %8s %12s %9s %8s %12s\n", "prefetch", "decode t/s", "GB/s", "stall ms/t", "hit",
                "disk/token", "precision", "recall", "wasted/token");
    for (const auto& s : summary)
      std::printf("%-8s %10.2f %8.2f %12.2f %8.3f %12s %9.3f %8.3f %12s\n", s["variant"].get<std::string>().c_str(),
                  s["decode_tok_s"].get<double>(), s["decode_gb_s"].get<double>(), s["stall_ms_per_token"].get<double>(),
                  s["ram_hit_rate"].get<double>(), format_bytes(uint64_t(s["disk_bytes_per_token"].get<double>())).c_str(),
                  s["prefetch_precision"].get<double>(), s["prefetch_recall"].get<double>(),
                  format_bytes(uint64_t(s["prefetch_wasted_bytes_per_token"].get<double>())).c_str());
    return 0;
  };
}

}  // namespace moe::cli
