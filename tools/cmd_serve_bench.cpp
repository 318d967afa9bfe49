// moe serve-bench: the server's batching measured without HTTP (so it also runs in builds
// without cpp-httplib, such as the GPU bundle). For each client count N, N clients each send
// --requests requests of --prompt-len random tokens and --gen-len generated tokens (no stop
// token) through the serve Scheduler; decode throughput, inter-token latency percentiles, and
// what the batched steps read: the dense weights once per step and each routed expert once per
// step, whatever the number of its tokens. That byte count over the time is the achieved
// bandwidth; tokens/s against a ceiling (GB/s, --ceiling, or --measure-ceiling: a DRAM read
// before and after each client count, the highest reading) gives the bound. Bytes, GB/s and the
// bound are those of the decode steps (no prompt tokens): a prefill step is bound by compute.
// With a constraint (--json-schema, --grammar, ...) every request is constrained: the mask's time
// per token and its share of the engine's busy time are printed beside (decode speed with a
// schema on vs off).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "kernels/cpu/membw.h"
#include "runtime/forced_routing.h"
#include "serve/grammar/token_vocab.h"
#include "serve/scheduler/grammar_constraint.h"
#include "serve/scheduler/scheduler.h"
#include "session/session.h"
#include "tools/commands.h"
#include "tools/percentile.h"
#include "tools/constraint_flags.h"
#include "tools/model_files.h"
#include "tools/session_flags.h"

namespace moe::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct ServeBenchOpts {
  std::string model, clients = "1,4,16", routing = "natural";
  int prompt_len = 128, gen_len = 64, requests = 2, prefill_chunk = 512;
  uint64_t seed = 1;
  double ceiling_gbs = 0;
  bool json = false, warm_ram = false, measure_ceiling = false;
  SessionOptions session;
  ConstraintFlags constraint;  // every request constrained (the grammar's cost beside a decode step)
  std::shared_ptr<const grammar::CompiledGrammar> grammar;
  std::vector<int32_t> end_ids;
};

nlohmann::json run_clients(Session& session, const ServeBenchOpts& o, int n) {
  session.restart_engine();
  InferenceEngine& engine = session.engine();
  install_routing(engine, o.routing, o.seed, nullptr);
  serve::SchedulerOptions so;
  so.parallel = n;
  so.prefill_chunk = o.prefill_chunk;
  so.context = o.prompt_len + o.gen_len + 1;
  serve::Scheduler sched(engine, session.tokenizer(), so);
  const int64_t vocab = session.model().cfg.vocab_size;
  const size_t nc = size_t(n);
  std::vector<std::vector<double>> gaps(nc);
  std::vector<int64_t> decoded(nc, 0);
  std::vector<std::string> errors(nc);
  serve::SchedulerStats before;
  Clock::time_point t_start;
  // Decode phase: from when every client has its first token until the first client finishes
  // its last request would cut the tail; instead all clients' decode tokens over the span
  // from the first first-token to the last last-token.
  std::vector<Clock::time_point> first_tok(nc), last_tok(nc);
  std::vector<std::vector<double>> mask_s(nc);
  auto client = [&](int c) {
    std::mt19937_64 rng(o.seed * 7919 + uint64_t(c));
    for (int r = 0; r < o.requests; ++r) {
      serve::GenerationRequest req;
      for (int i = 0; i < o.prompt_len; ++i) req.prompt.push_back(int32_t(rng() % uint64_t(vocab)));
      req.max_tokens = o.gen_len;
      req.sampling.temperature = 0;
      req.event_per_token = true;  // exact inter-token gaps, without the cost of logprobs
      std::shared_ptr<serve::GrammarConstraint> gc;
      if (o.grammar) {
        gc = std::make_shared<serve::GrammarConstraint>(o.grammar);
        req.constraint = gc;
        req.stop_ids = o.end_ids;
      }
      auto h = sched.submit(std::move(req));
      Clock::time_point prev{};
      for (;;) {
        auto ev = h->next(std::chrono::seconds(600));
        if (!ev) {
          errors[size_t(c)] = "no event within 600 s";
          return;
        }
        const auto now = Clock::now();
        if (!ev->first && prev != Clock::time_point{}) gaps[size_t(c)].push_back(std::chrono::duration<double>(now - prev).count());
        if (ev->first && r == 0) first_tok[size_t(c)] = now;
        prev = now;
        if (ev->finish != serve::FinishReason::none) {
          decoded[size_t(c)] += ev->completion_tokens;
          const bool ok = ev->finish == serve::FinishReason::length || (gc && ev->finish == serve::FinishReason::stop);
          if (!ok) errors[size_t(c)] = ev->error.empty() ? serve::finish_reason_name(ev->finish) : ev->error;
          if (gc) mask_s[size_t(c)].insert(mask_s[size_t(c)].end(), gc->mask_seconds().begin(), gc->mask_seconds().end());
          last_tok[size_t(c)] = now;
          break;
        }
      }
    }
  };
  sched.run_between_steps([&] {
    session.reset_stats();
    before = sched.stats();
  });
  t_start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < n; ++c) threads.emplace_back(client, c);
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t_start).count();
  serve::SchedulerStats after;
  sched.run_between_steps([&] { after = sched.stats(); });
  for (const auto& e : errors)
    if (!e.empty()) throw std::runtime_error("serve-bench: a request failed: " + e);

  std::vector<double> all;
  for (auto& g : gaps) all.insert(all.end(), g.begin(), g.end());
  int64_t tokens = 0;
  for (int64_t d : decoded) tokens += d;
  const double span = std::chrono::duration<double>(*std::max_element(last_tok.begin(), last_tok.end()) -
                                                    *std::min_element(first_tok.begin(), first_tok.end())).count();
  const int64_t steps = after.steps - before.steps;
  // Per step: the decode-only steps (no prompt tokens), whose bound is the bytes they read: the
  // dense weights once and each (layer, expert) their tokens chose once.
  const int64_t dsteps = after.decode_steps - before.decode_steps, dtokens = after.decode_tokens - before.decode_tokens;
  const int64_t dreads = after.decode_expert_reads - before.decode_expert_reads;
  const Session::StepBytes sb = session.step_bytes();
  const double dbytes = double(dsteps) * sb.dense + double(dreads) * sb.expert;
  const double busy = after.busy_seconds - before.busy_seconds;
  const double dbusy = after.decode_busy_seconds - before.decode_busy_seconds;
  nlohmann::json j = {{"clients", n},
                      {"requests", n * o.requests},
                      {"generated_tokens", tokens},
                      {"wall_s", wall},
                      {"tok_s", double(tokens) / span},
                      {"itl_p50_ms", 1e3 * percentile(all, 0.5)},
                      {"itl_p99_ms", 1e3 * percentile(all, 0.99)},
                      {"steps", steps},
                      {"busy_s", busy},
                      {"decode_steps", dsteps},
                      {"decode_tokens", dtokens},
                      {"decode_busy_s", dbusy},
                      {"decode_tok_s", dbusy > 0 ? double(dtokens) / dbusy : 0.0},
                      {"expert_reads_per_step", dsteps ? double(dreads) / double(dsteps) : 0.0},
                      {"bytes", dbytes},
                      {"bytes_per_step", dsteps ? dbytes / double(dsteps) : 0.0},
                      {"bytes_per_token", dtokens ? dbytes / double(dtokens) : 0.0},
                      {"achieved_gb_s", dbusy > 0 ? dbytes / dbusy / 1e9 : 0.0}};
  if (o.grammar) {
    std::vector<double> m;
    for (auto& v : mask_s) m.insert(m.end(), v.begin(), v.end());
    j["mask_p50_ms"] = 1e3 * percentile(m, 0.5);
    j["mask_p99_ms"] = 1e3 * percentile(m, 0.99);
    j["mask_share"] = busy > 0 ? std::accumulate(m.begin(), m.end(), 0.0) / busy : 0.0;
  }
  return j;
}

// The bound: the decode steps' bytes read at the ceiling, against their tokens per busy second.
void add_bound(nlohmann::json& j, double ceiling_gbs) {
  const auto tokens = j["decode_tokens"].get<int64_t>();
  if (ceiling_gbs <= 0 || tokens <= 0) return;
  const double bound_tok_s = double(tokens) / (j["bytes"].get<double>() / (ceiling_gbs * 1e9));
  j["ceiling_gb_s"] = ceiling_gbs;
  j["bound_tok_s"] = bound_tok_s;
  j["bound_ratio"] = bound_tok_s / j["decode_tok_s"].get<double>();
}

}  // namespace

Runner add_serve_bench(CLI::App& app) {
  auto o = std::make_shared<ServeBenchOpts>();
  CLI::App* c = app.add_subcommand("serve-bench", "The server's continuous batching without HTTP: throughput, "
                                                  "inter-token latency and bytes read per step at 1, 4, 16 clients");
  c->add_option("--model,-m", o->model, "Hugging Face model directory or .moepack file")->required();
  c->add_option("--clients", o->clients, "Client counts, comma-separated")->capture_default_str();
  c->add_option("--prompt-len", o->prompt_len, "Prompt tokens of each request")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  c->add_option("--gen-len", o->gen_len, "Tokens each request generates")->check(CLI::Range(2, 1 << 20))->capture_default_str();
  c->add_option("--requests", o->requests, "Requests per client, one after another")->check(CLI::Range(1, 1000))->capture_default_str();
  c->add_option("--prefill-chunk", o->prefill_chunk, "Prompt tokens per sequence per step")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  c->add_option("--routing", o->routing, "natural | uniform | zipf:S (forced expert choice, as moe bench)")->capture_default_str();
  c->add_option("--ceiling", o->ceiling_gbs, "Memory bandwidth ceiling in GB/s (measured beside this run): prints the bound")
      ->check(CLI::Range(0.0, 1e6));
  c->add_flag("--measure-ceiling", o->measure_ceiling,
              "Read 1 GiB of DRAM on the compute threads before and after each client count and take the highest "
              "reading (or --ceiling, if higher) as the ceiling: the bound then comes from this run");
  add_seed_flag(c, o->seed, "Seed of the prompts and of forced routing");
  c->add_flag("--json", o->json, "One JSON object per client count");
  c->add_flag("--warm-ram", o->warm_ram, "Read every expert into the RAM tier first (the budget must hold them all)");
  add_storage_flags(c, o->session.storage);
  add_prefetch_flags(c, o->session.prefetch);
  add_device_flags(c, o->session.device);
  add_threads_flag(c, o->session.device.threads)->capture_default_str();
  add_constraint_flags(c, o->constraint);
  return [o] {
    std::optional<grammar::Grammar> constraint = constraint_grammar(o->constraint);
    std::vector<int> counts;
    for (int32_t v : parse_int_list(o->clients, "--clients", "client count")) {
      if (v < 1 || v > 1024) throw std::invalid_argument(fmt::format("--clients: {} is not in [1, 1024]", v));
      counts.push_back(int(v));
    }
    SessionOptions so = o->session;
    so.start_engine = false;
    Session session(o->model, so);
    if (o->warm_ram && session.warm_ram() > 0)
      throw std::invalid_argument("--warm-ram: the RAM budget does not hold every expert");
    if (constraint) {
      o->end_ids = session.stop_ids();
      if (o->end_ids.empty()) throw std::invalid_argument("the model has no end-of-sequence token to end a constrained text");
      o->grammar = grammar::CompiledGrammar::compile(std::move(*constraint),
                                                      grammar::TokenVocab::from_tokenizer(session.tokenizer(), o->end_ids));
      o->grammar->walk_all(grammar::kCompileWalkBudgetSeconds);  // as the server does
    }
    // With --measure-ceiling the rows wait for the last DRAM reading: every row's bound uses the
    // run's highest.
    std::optional<cpu::DramProbe> probe;
    std::unique_ptr<ThreadPool> probe_pool;
    std::vector<double> readings;
    const auto read_dram = [&] {
      if (!o->measure_ceiling) return;
      if (!probe) {
        probe.emplace();
        probe_pool = std::make_unique<ThreadPool>(o->session.device.threads);  // 0: physical cores, as the engine
      }
      readings.push_back(probe->read_gbs(*probe_pool));
    };
    const bool ceiling = o->ceiling_gbs > 0 || o->measure_ceiling;
    if (!o->json)
      std::printf("%s\n", fmt::format("{:>7} {:>9} {:>10} {:>10} {:>7} {:>7} {:>10} {:>13} {:>12} {:>9}{}", "clients", "tok/s",
                                       "ITL p50 ms", "ITL p99 ms", "steps", "decode", "decode t/s", "experts/step",
                                       "MB/step", "GB/s", ceiling ? "  bound tok/s  bound/actual" : "")
                              .c_str());
    const auto print = [&](nlohmann::json& j, double ceiling_gbs) {
      add_bound(j, ceiling_gbs);
      if (o->json) {
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::string row = fmt::format("{:>7} {:>9.2f} {:>10.2f} {:>10.2f} {:>7} {:>7} {:>10.2f} {:>13.1f} {:>12.1f} {:>9.2f}",
                                      j["clients"].get<int>(), j["tok_s"].get<double>(), j["itl_p50_ms"].get<double>(),
                                      j["itl_p99_ms"].get<double>(), j["steps"].get<int64_t>(),
                                      j["decode_steps"].get<int64_t>(), j["decode_tok_s"].get<double>(),
                                      j["expert_reads_per_step"].get<double>(), j["bytes_per_step"].get<double>() / 1e6,
                                      j["achieved_gb_s"].get<double>());
        if (j.contains("mask_p50_ms"))
          row += fmt::format("  mask p50 {:.3f} ms p99 {:.3f} ms ({:.2f}% of busy time)", j["mask_p50_ms"].get<double>(),
                             j["mask_p99_ms"].get<double>(), 100 * j["mask_share"].get<double>());
        if (j.contains("bound_tok_s"))
          row += fmt::format("  {:>11.2f}  {:>12.2f}", j["bound_tok_s"].get<double>(), j["bound_ratio"].get<double>());
        std::printf("%s\n", row.c_str());
      }
      std::fflush(stdout);
    };
    std::vector<nlohmann::json> rows;
    read_dram();
    for (int n : counts) {
      nlohmann::json j = run_clients(session, *o, n);
      read_dram();
      if (o->measure_ceiling) rows.push_back(std::move(j));
      else print(j, o->ceiling_gbs);
    }
    if (o->measure_ceiling) {
      const double top = std::max(o->ceiling_gbs, *std::max_element(readings.begin(), readings.end()));
      for (auto& j : rows) print(j, top);
      std::string list;
      for (double r : readings) list += fmt::format("{}{:.1f}", list.empty() ? "" : ", ", r);
      std::fprintf(o->json ? stderr : stdout, "DRAM read (%d threads, before and after each client count): %s GB/s; ceiling %.1f GB/s\n",
                   probe_pool->size(), list.c_str(), top);
    }
    return 0;
  };
}

}  // namespace moe::cli
