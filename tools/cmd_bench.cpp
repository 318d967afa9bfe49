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

#include "kernels/cpu/qmatmul.h"
#include "prefetch/oracle_predictor.h"
#include "runtime/engine.h"
#include "runtime/forced_routing.h"
#include "runtime/sampler.h"
#include "session/session.h"
#include "storage/io/disk_bandwidth.h"
#include "storage/io/uring_reader.h"
#include "storage/byte_size.h"
#include "storage/process_memory.h"
#include "tools/commands.h"
#include "tools/progress.h"
#include "tools/session_flags.h"

namespace moe::cli {

namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// Multiply-adds of weight matrices per prompt token: the active parameters less the embedding
// (a lookup) and the LM head (one row per prompt); norms and biases are in the noise.
int64_t prefill_macs_per_token(const ModelConfig& c) {
  return count_params(c).active - c.vocab_size * c.hidden * (c.tie_embeddings ? 1 : 2);
}

// Reads every expert of the pack into the RAM tier once, with progress; warns when the RAM
// budget could not keep them all.
void warm_ram_tier(Session& session) {
  if (!session.has_ram_tier()) return;
  Progress bar("warm RAM", session.ram_expert_bytes());
  const uint64_t evicted = session.warm_ram([&bar](uint64_t bytes) { bar.add(bytes); });
  bar.finish();
  if (evicted > 0)
    std::fprintf(stderr, "warning: --warm-ram: the RAM budget could not hold every expert (%llu evicted); raise --ram-budget\n",
                 static_cast<unsigned long long>(evicted));
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

namespace {

struct BenchOpts {
  std::string model, routing = "natural";
  int prompt_len = 128, gen_len = 64, warmup = 4, rounds = 1;
  uint64_t seed = 1;
  bool json = false, io_only = false, warm_ram = false, warm_prefill = false;
  double io_seconds = 6;
  double disk_probe = 0;  // seconds of disk reads before each measurement (0: none)
  SessionOptions session;
};

// One measured configuration: a VRAM budget (empty: the session's) and a prefetch mode.
struct Variant {
  std::string name, budget, mode;
};

// Every --vram-budget (a comma-separated list compares several) with every --prefetch mode;
// named by the mode alone unless several budgets are compared ("25%/gate").
std::vector<Variant> plan_variants(const BenchOpts& o) {
  const std::vector<std::string> modes = split_list(o.session.prefetch.mode);
  for (const std::string& v : modes)
    if (v != "auto" && v != "off" && v != "gate" && v != "history" && v != "blend" && v != "oracle")
      throw std::invalid_argument(fmt::format("--prefetch: unknown mode '{}'; give auto, off, gate, history, blend or "
                                              "oracle, or a comma-separated list of them to compare", v));
  if (modes.empty()) throw std::invalid_argument("--prefetch: give a mode, or a comma-separated list of modes");
  const std::string& vb = o.session.device.vram_budget;
  const std::vector<std::string> budgets = vb.empty() ? std::vector<std::string>{""} : split_list(vb);
  std::vector<Variant> out;
  for (const std::string& b : budgets)
    for (const std::string& mo : modes) out.push_back({budgets.size() > 1 ? b + "/" + mo : mo, b, mo});
  return out;
}

// The engine of one measurement: the variant's budget and mode, forced routing installed
// before the prefetcher (whose oracle reads it), one trace file per measurement when several.
EngineVariant engine_variant(const BenchOpts& o, const Session& session, const Variant& v, int round, bool first,
                             bool several, RoutingStats* routing) {
  EngineVariant ev;
  ev.vram_budget = v.budget;
  ev.prefetch_mode = v.mode;
  ev.verbose = round == 0 && first;
  auto forced = std::make_shared<std::shared_ptr<const ForcedRouting>>();
  ev.before_prefetch = [&o, routing, forced](InferenceEngine& e) { *forced = install_routing(e, o.routing, o.seed, routing); };
  if (v.mode == "oracle")
    ev.make_predictor = [forced, n = experts_per_layer(session.model())]() -> std::unique_ptr<Predictor> {
      if (!*forced)
        throw std::invalid_argument("--prefetch oracle knows the future only of forced routing: add --routing uniform or "
                                    "--routing zipf:S");
      return std::make_unique<OraclePredictor>(*forced, n);
    };
  const std::string& trace = o.session.prefetch.trace;
  if (!trace.empty() && several) {
    const std::filesystem::path t(trace);
    std::string tag = v.name;
    std::replace(tag.begin(), tag.end(), '/', '-');
    ev.trace = (t.parent_path() / fmt::format("{}-{}-r{}{}", t.stem().string(), tag, round, t.extension().string())).string();
  }
  return ev;
}

// One measurement: a cold RAM tier (unless --warm-ram), a fresh engine and sequence, prefill,
// warm-up, timed decode.
nlohmann::json measure(Session& session, const BenchOpts& o, const Variant& v, int round, bool first, bool several,
                       double bpt) {
  if (!o.warm_ram) session.clear_ram();
  // The disk's ceiling right beside the figure it bounds: a VM's disk rate moves by 30% within
  // minutes, so a probe taken once per script run can sit far from this measurement's.
  DiskBandwidth disk;
  if (o.disk_probe > 0) {
    DiskBandwidthOptions dbo;
    dbo.random_pass = false;
    // Half the time in reads of an expert record's mean size at random places, 32 per batch so the
    // queue stays full: what the disk gives for the reads offloading makes, not our schedule's
    // figure (batches of top-k read 1.38 GB/s where 64 read 1.42 on the Zen 4 VM).
    const Model& m = session.model();
    const uint64_t experts = uint64_t(m.cfg.n_moe_layers()) * uint64_t(std::max(1, m.cfg.router.n_experts));
    if (session.ram_expert_bytes() > 0 && experts > 0) {
      dbo.extent_bytes = session.ram_expert_bytes() / experts;
      dbo.extents_per_batch = 32;
    }
    try {
      disk = measure_disk_bandwidth(o.model, o.disk_probe, dbo);
    } catch (const UringUnavailable& e) {
      throw std::runtime_error(fmt::format("--disk-probe reads through io_uring, which is unavailable here ({}); run "
                                           "without --disk-probe", e.what()));
    }
  }
  const double disk_seq = disk.seq_bytes_per_s;
  RoutingStats routing;
  session.restart_engine(engine_variant(o, session, v, round, first, several, &routing));
  InferenceEngine& engine = session.engine();
  const Model& m = session.model();
  session.measure_link();  // the GPU's host -> device copies, once per session
  session.reset_stats();

  std::mt19937_64 rng(o.seed);
  std::vector<int32_t> prompt(size_t(o.prompt_len));
  for (auto& t : prompt) t = int32_t(rng() % uint64_t(m.cfg.vocab_size));
  if (o.warm_prefill) {  // the same prompt once, untimed: first-call allocations and kernel loads
    const SeqId w = engine.create_sequence();
    const BatchItem item{w, prompt, false};
    engine.forward({&item, 1});
    engine.free_sequence(w);
    session.reset_stats();
  }
  const SeqId s = engine.create_sequence();
  auto* cpu_engine = dynamic_cast<Engine*>(&engine);  // per-block times: the CPU engine keeps them
  if (cpu_engine) cpu_engine->reset_layer_times();
  auto t0 = clock_type::now();
  BatchItem pre{s, prompt, false};
  std::vector<float> logits = engine.forward({&pre, 1});
  const double prefill_s = since(t0);
  const SessionStats prefill = session.stats();
  const LayerTimes prefill_times = cpu_engine ? cpu_engine->layer_times() : LayerTimes{};

  int32_t next = argmax(logits);
  auto step = [&] {
    BatchItem d{s, std::span(&next, 1), false};
    logits = engine.forward({&d, 1});
    next = argmax(logits);
  };
  for (int i = 0; i < o.warmup; ++i) step();
  session.reset_stats();
  for (auto& row : routing.counts) std::fill(row.begin(), row.end(), 0);
  if (cpu_engine) cpu_engine->reset_layer_times();
  t0 = clock_type::now();
  for (int i = 0; i < o.gen_len; ++i) step();
  const double decode_s = since(t0);
  const LayerTimes decode_times = cpu_engine ? cpu_engine->layer_times() : LayerTimes{};
  session.flush_trace();

  const double decode_tps = o.gen_len / decode_s;
  const ProcessMemory pm = read_process_memory();
  nlohmann::json j = {
      {"model", o.model},
      {"routing", o.routing},
      {"io", o.session.storage.io},
      {"policy", o.session.storage.policy},
      {"device", engine.backend()},
      {"cpu_kernels", cpu::active_kernels()},
      {"threads", engine.threads()},
      {"prompt_len", o.prompt_len},
      {"gen_len", o.gen_len},
      {"prefill_tok_s", o.prompt_len / prefill_s},
      // Weight products of the prompt (2 flops per multiply-add; attention's scores and the one
      // LM-head row excluded): against the GPU's tensor-core peak.
      {"prefill_tflop_s", 2.0 * double(prefill_macs_per_token(m.cfg)) * o.prompt_len / prefill_s / 1e12},
      {"decode_tok_s", decode_tps},
      {"decode_bytes_per_token", bpt},
      {"decode_gb_s", bpt * decode_tps / 1e9},
      {"routing_entropy", routing.entropy()},
      {"routing_entropy_uniform", std::log(double(std::max(1, m.cfg.router.n_experts)))},
      {"peak_rss_bytes", pm.peak_rss_bytes},
      {"rss_bytes", pm.rss_bytes},
      {"kv_bytes", engine.kv_bytes()},
      {"dense_bytes", session.dense_bytes()},
  };
  j.update(session.stats().json(uint64_t(o.gen_len), decode_tps));
  if (prefill.ram) {
    j["prefill_disk_bytes"] = prefill.ram->total.disk_bytes();
    j["prefill_ram_hit_rate"] = prefill.ram->total.hit_rate();
  }
  j["prefetch"] = session.prefetch_mode();
  if (cpu_engine) {
    const auto shares = [](const LayerTimes& t, double s) {
      return nlohmann::json{{"attention", t.attention / s}, {"linear_attention", t.linear / s}, {"ffn", t.ffn / s}};
    };
    j["prefill_time_share"] = shares(prefill_times, prefill_s);
    j["decode_time_share"] = shares(decode_times, decode_s);
    j["decode_time_share"]["moe"] = decode_times.moe / decode_s;
    j["decode_moe_ms_per_token"] = 1e3 * decode_times.moe / o.gen_len;
  }
  if (disk_seq > 0) {
    // Disk bounds: decode at the rate the probe read, if reading the misses were all it did;
    // against the sequential rate and against the rate of whole records at random places (the
    // reads offloading makes). The MoE blocks' share says how busy they keep the disk.
    const double bpt_disk = j["disk_bytes_per_token"].get<double>();
    const double disk_s = bpt_disk / disk_seq;
    j["disk_seq_bytes_per_s"] = disk_seq;
    j["disk_ms_per_token"] = 1e3 * disk_s;
    j["disk_bound_tok_s"] = disk_s > 0 ? 1.0 / disk_s : 0.0;
    j["of_disk_bound"] = disk_s * decode_tps;
    double reads_s = disk_s;  // the reads' own time: at the expert-sized rate where measured
    if (disk.extent_bytes_per_s > 0) {
      reads_s = bpt_disk / disk.extent_bytes_per_s;
      j["disk_expert_reads_bytes_per_s"] = disk.extent_bytes_per_s;
      j["expert_reads_bound_tok_s"] = reads_s > 0 ? 1.0 / reads_s : 0.0;
      j["of_expert_reads_bound"] = reads_s * decode_tps;
    }
    if (cpu_engine && decode_times.moe > 0) {
      j["moe_disk_share"] = reads_s * o.gen_len / decode_times.moe;
      // Without a prediction of the routing (forced uniform routing has none), no read can start
      // before its layer is routed: the blocks outside MoE layers and the reads take turns, so
      // decode is bound by their sum.
      const double outside_s = (decode_s - decode_times.moe) / o.gen_len;
      j["routed_bound_tok_s"] = 1.0 / (outside_s + reads_s);
      j["of_routed_bound"] = (outside_s + reads_s) * decode_tps;
    }
  }
  if (!v.budget.empty()) j["vram_budget_flag"] = v.budget;
  return j;
}

std::string summary_line(const nlohmann::json& j) {
  if (j.contains("vram_hit_rate"))
    return fmt::format("decode {:.2f} tok/s = {:.2f} GB/s of weights | VRAM budget {} ({:.0f}% of experts), hit rate "
                       "{:.3f}, copied {} per token, PCIe bound {:.2f} tok/s | prefetch {}",
                       j["decode_tok_s"].get<double>(), j["decode_gb_s"].get<double>(),
                       format_bytes(j["vram_budget_bytes"].get<uint64_t>()), 100.0 * j["vram_budget_share"].get<double>(),
                       j["vram_hit_rate"].get<double>(), format_bytes(uint64_t(j["vram_copied_bytes_per_token"].get<double>())),
                       j["pcie_bound_tok_s"].get<double>(), j["prefetch"].get<std::string>());
  std::string disk;
  if (j.contains("of_disk_bound"))
    disk = fmt::format(" | disk alone {:.2f} GB/s sequential: {:.0f}% of that bound{}{}", j["disk_seq_bytes_per_s"].get<double>() / 1e9,
                       100.0 * j["of_disk_bound"].get<double>(),
                       j.contains("of_expert_reads_bound")
                           ? fmt::format(", {:.2f} GB/s in whole records at random places: {:.0f}%",
                                         j["disk_expert_reads_bytes_per_s"].get<double>() / 1e9,
                                         100.0 * j["of_expert_reads_bound"].get<double>())
                           : std::string(),
                       j.contains("moe_disk_share")
                           ? fmt::format(", MoE blocks {:.0f}% disk time, {:.0f}% of the bound with reads after routing",
                                         100.0 * j["moe_disk_share"].get<double>(),
                                         100.0 * j["of_routed_bound"].get<double>())
                           : std::string());
  return fmt::format("prefill {:.1f} tok/s | decode {:.2f} tok/s = {:.2f} GB/s of weights ({} per token) | RAM hit "
                     "rate {:.3f} | disk {} per token | stall {:.2f} ms/token | prefetch {} | peak RSS {} | CPU kernels {}",
                     j["prefill_tok_s"].get<double>(), j["decode_tok_s"].get<double>(), j["decode_gb_s"].get<double>(),
                     format_bytes(uint64_t(j["decode_bytes_per_token"].get<double>())), j["ram_hit_rate"].get<double>(),
                     format_bytes(uint64_t(j["disk_bytes_per_token"].get<double>())), j["stall_ms_per_token"].get<double>(),
                     j["prefetch"].get<std::string>(), format_bytes(j["peak_rss_bytes"].get<uint64_t>()),
                     j["cpu_kernels"].get<std::string>()) +
         disk;
}

// Medians per variant of the figures a comparison is about.
nlohmann::json summarise(const std::vector<Variant>& variants, const nlohmann::json& runs) {
  nlohmann::json summary = nlohmann::json::array();
  const char* keys[] = {"decode_tok_s", "decode_gb_s", "stall_ms_per_token", "ram_hit_rate", "disk_bytes_per_token",
                        "prefetch_precision", "prefetch_recall", "prefetch_wasted_bytes_per_token", "vram_hit_rate",
                        "vram_copied_bytes_per_token", "pcie_bound_tok_s", "disk_seq_bytes_per_s", "of_disk_bound",
                        "moe_disk_share", "of_routed_bound", "disk_expert_reads_bytes_per_s",
                        "of_expert_reads_bound"};
  for (const Variant& v : variants) {
    nlohmann::json s = {{"variant", v.name}};
    for (const char* k : keys) {
      std::vector<double> xs;
      for (const auto& j : runs)
        if (j["variant"] == v.name && j.contains(k)) xs.push_back(j[k].get<double>());
      s[k] = median(xs);
    }
    summary.push_back(std::move(s));
  }
  return summary;
}

void print_summary(const BenchOpts& o, const nlohmann::json& summary) {
  std::printf("%s\n", fmt::format("medians of {} rounds ({} decode tokens each, routing {})", o.rounds, o.gen_len,
                                   o.routing).c_str());
  const bool probed = o.disk_probe > 0;
  std::printf("%-8s %10s %8s %12s %8s %12s %9s %8s %12s%s\n", "prefetch", "decode t/s", "GB/s", "stall ms/t", "hit",
              "disk/token", "precision", "recall", "wasted/token",
              probed ? "    seq GB/s  of bound  record GB/s  of bound" : "");
  for (const auto& s : summary)
    std::printf("%-8s %10.2f %8.2f %12.2f %8.3f %12s %9.3f %8.3f %12s%s\n", s["variant"].get<std::string>().c_str(),
                s["decode_tok_s"].get<double>(), s["decode_gb_s"].get<double>(), s["stall_ms_per_token"].get<double>(),
                s["ram_hit_rate"].get<double>(), format_bytes(uint64_t(s["disk_bytes_per_token"].get<double>())).c_str(),
                s["prefetch_precision"].get<double>(), s["prefetch_recall"].get<double>(),
                format_bytes(uint64_t(s["prefetch_wasted_bytes_per_token"].get<double>())).c_str(),
                probed ? fmt::format(" {:11.2f} {:8.0f}% {:12.2f} {:8.0f}%", s["disk_seq_bytes_per_s"].get<double>() / 1e9,
                                     100.0 * s["of_disk_bound"].get<double>(),
                                     s["disk_expert_reads_bytes_per_s"].get<double>() / 1e9,
                                     100.0 * s["of_expert_reads_bound"].get<double>())
                             .c_str()
                       : "");
}

int run_bench(BenchOpts& o) {
  if (o.io_only) {
    if (!std::filesystem::is_regular_file(o.model))
      throw std::invalid_argument(fmt::format("--io-only reads a file: {} is not one (give a .moepack, whose disk it "
                                              "measures)", o.model));
    const DiskBandwidth d = measure_disk_bandwidth(o.model, o.io_seconds);
    const nlohmann::json j = {{"disk_seq_bytes_per_s", d.seq_bytes_per_s}, {"disk_rand4k_bytes_per_s", d.rand_bytes_per_s},
                              {"disk_rand4k_iops", d.rand_iops}, {"o_direct", d.direct}};
    std::printf("%s\n", o.json ? j.dump().c_str() : j.dump(2).c_str());
    return 0;
  }
  if (o.prompt_len < 1 || o.gen_len < 1) throw std::invalid_argument("--prompt-len and --gen-len must be >= 1");
  if (o.disk_probe > 0 && !std::filesystem::is_regular_file(o.model))
    throw std::invalid_argument(fmt::format("--disk-probe reads a .moepack: {} is not a file (a checkpoint directory is "
                                            "mapped whole, with no expert reads to bound)", o.model));
  const std::vector<Variant> variants = plan_variants(o);
  SessionOptions so = o.session;
  so.start_engine = false;  // each measurement starts its own
  Session session(o.model, so);
  const double bpt = session.decode_bytes_per_token();
  if (o.warm_ram) warm_ram_tier(session);
  const bool several = variants.size() > 1 || o.rounds > 1;
  if (!several) {
    const nlohmann::json j = measure(session, o, variants[0], 0, true, false, bpt);
    std::printf("%s\n", o.json ? j.dump().c_str() : (summary_line(j) + format_gpu_phases(j)).c_str());
    return 0;
  }
  // Variants alternate within each round, so drift (thermal, other load) hits all alike.
  nlohmann::json runs = nlohmann::json::array();
  for (int r = 0; r < o.rounds; ++r)
    for (const Variant& v : variants) {
      nlohmann::json j = measure(session, o, v, r, &v == &variants[0], true, bpt);
      j["round"] = r;
      j["variant"] = v.name;
      if (!o.json) std::fprintf(stderr, "round %d %-8s %s\n", r, v.name.c_str(), (summary_line(j) + format_gpu_phases(j)).c_str());
      runs.push_back(std::move(j));
    }
  const nlohmann::json summary = summarise(variants, runs);
  if (o.json)
    std::printf("%s\n", nlohmann::json{{"rounds", o.rounds}, {"summary", summary}, {"runs", runs}}.dump().c_str());
  else
    print_summary(o, summary);
  return 0;
}

}  // namespace

Runner add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOpts>();
  CLI::App* c = app.add_subcommand("bench", "Measure prefill/decode speed, expert-cache behaviour and memory");
  c->add_option("--model,-m", o->model, "Hugging Face model directory or .moepack file")->required();
  c->add_option("--prompt-len", o->prompt_len, "Prompt tokens (random ids, seeded)")->capture_default_str();
  c->add_option("--gen-len", o->gen_len, "Timed decode tokens")->capture_default_str();
  c->add_option("--warmup", o->warmup, "Untimed decode tokens between prefill and the timed decode")->capture_default_str();
  c->add_flag("--warm-prefill", o->warm_prefill,
              "Prefill the same prompt once, untimed, before the timed prefill (first-call allocations and kernel "
              "loads out of the figure; experts it read stay resident)");
  c->add_option("--routing", o->routing, "natural | uniform | zipf:S | trace:FILE (forced expert choice)")->capture_default_str();
  add_seed_flag(c, o->seed, "Seed for prompt tokens and forced routing");
  add_threads_flag(c, o->session.device.threads);
  c->add_option("--rounds", o->rounds, "Repeat every --prefetch variant this many times, alternating (medians reported)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  c->add_flag("--json", o->json, "Print one JSON object");
  c->add_flag("--warm-ram", o->warm_ram,
              "Read every expert into the RAM tier once before measuring, and keep it warm across variants (the "
              "RAM budget must hold them all): measures the tiers above RAM");
  c->add_flag("--io-only", o->io_only, "Only measure the disk's O_DIRECT read bandwidth on the pack file");
  c->add_option("--io-seconds", o->io_seconds, "Duration of --io-only")->capture_default_str();
  c->add_option("--disk-probe", o->disk_probe,
                "Before each measurement, read the pack for this many seconds (O_DIRECT, the expert reader's depth; "
                "half sequentially, half in whole expert records at random places) and report decode against both "
                "disk bounds")
      ->check(CLI::Range(0.0, 600.0));
  add_storage_flags(c, o->session.storage);
  bool stats = false;  // accepted as before; bench always reports its figures
  add_stats_flag(c, stats);
  add_prefetch_flags(c, o->session.prefetch, /*list=*/true);
  add_device_flags(c, o->session.device);
  return [o] { return run_bench(*o); };
}

}  // namespace moe::cli
