// moe batch: an OpenAI batch JSONL file through the model (serve/batch): each request runs through
// the server's own handlers (chat template, constraints, output parser), many at once through one
// continuous-batching scheduler; results are appended as they finish; --resume continues a job.
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "serve/batch/batch_job.h"
#include "serve/grammar/token_vocab.h"
#include "serve/http/chat_renderer.h"
#include "serve/http/handler_common.h"
#include "serve/http/openai_response.h"
#include "session/session.h"
#include "storage/byte_size.h"
#include "tools/commands.h"
#include "tools/scheduler_flags.h"
#include "tools/model_files.h"
#include "tools/session_flags.h"

namespace moe::cli {

namespace {

std::string duration(double s) {
  if (!(s >= 0) || s > 1e7) return "?";
  const int64_t t = int64_t(s + 0.5);
  return t >= 3600 ? fmt::format("{}h{:02}m", t / 3600, t / 60 % 60) : fmt::format("{}m{:02}s", t / 60, t % 60);
}

// One progress line: requests done/total, prompt and generated tokens/s (prompt and generated
// tokens so far: the scheduler's live counts while the job runs, the finished requests' at the
// end), ETA (serve::batch::eta_seconds; `st` null at the end).
std::string progress_line(const serve::batch::Progress& p, double secs, int64_t prompt, int64_t generated,
                          const serve::SchedulerStats* st = nullptr) {
  const int64_t done = p.done, total = p.total - p.skipped;
  serve::batch::TokenCounts t;
  if (st) t = {p.done - p.errors + st->running, st->prompt_tokens - st->cached_tokens, st->prefilled_tokens, st->generated_tokens};
  const double eta = serve::batch::eta_seconds(p, secs, t);
  return fmt::format("moe batch: {}/{} requests{}{} | prompt {:.1f} tok/s | generated {:.1f} tok/s | {} elapsed, ETA {}", done,
                     total, p.errors ? fmt::format(" ({} errors)", int64_t(p.errors)) : "",
                     p.skipped ? fmt::format(" ({} already done)", int64_t(p.skipped)) : "",
                     secs > 0 ? double(prompt) / secs : 0.0, secs > 0 ? double(generated) / secs : 0.0,
                     duration(secs), eta >= 0 ? duration(eta) : "?");
}

}  // namespace

Runner add_batch(CLI::App& app) {
  struct Opts {
    std::string model, input, output, chat_template, tool_parser, prefix_cache = "1GiB", kv_budget = "50%";
    int max_batch = 64;
    int64_t max_tokens = 0;
    bool resume = false, json = false, warm_ram = false;
    serve::SchedulerOptions sched;
    SessionOptions session;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("batch", "Run an OpenAI batch file (JSONL of /v1/chat/completions and /v1/completions requests); resumable");
  c->add_option("--model,-m", o->model, "Hugging Face model directory or .moepack file")->required();
  c->add_option("--input,-i", o->input, "Batch input: one {custom_id, method, url, body} per line")->required();
  c->add_option("--output,-o", o->output, "Results, one line per request as each finishes (+ OUTPUT.state.json)")->required();
  c->add_flag("--resume", o->resume, "Continue a job that was stopped: skip the requests already in --output");
  c->add_option("--max-batch", o->max_batch, "Requests in flight at once (sequences per engine step)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  c->add_option("--prefix-cache", o->prefix_cache, "KV memory for reusing shared prompt prefixes (a size; 0: off)")->capture_default_str();
  c->add_option("--max-tokens", o->max_tokens, "Most tokens one request may generate (0: the rest of the context)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  c->add_option("--chat-template", o->chat_template, "Jinja chat template file (default: the model's)");
  c->add_option("--tool-parser", o->tool_parser, "Tool-call / reasoning syntax of the outputs (default: detected): " +
                                                    serve::http::tool_parser_names());
  c->add_flag("--json", o->json, "The final summary as one JSON line on stdout");
  c->add_flag("--warm-ram", o->warm_ram,
              "Read every expert into the RAM tier before the job starts (a budget that holds them all: the resident "
              "case, timed without its first reads)");
  add_scheduler_flags(c, o->sched, o->kv_budget);
  // Large batches use every expert each step: the expected-next-use policy keeps part of every
  // layer resident where LFU turns the whole RAM tier over (docs/results/2026-12-06-nextuse.md).
  o->session.storage.policy = "nextuse";
  add_storage_flags(c, o->session.storage);
  add_prefetch_flags(c, o->session.prefetch);
  add_device_flags(c, o->session.device);
  add_threads_flag(c, o->session.device.threads)->capture_default_str();
  return [o] {
    namespace http = serve::http;
    namespace batch = serve::batch;
    // Everything about the files first: a bad input fails before the model loads.
    const batch::BatchInput in = batch::read_input(o->input);
    const batch::JobIdentity id{o->input, in.xxh64, o->model, batch::model_fingerprint(o->model)};
    o->sched.prefix_cache_bytes = size_or_off(o->prefix_cache, "--prefix-cache");
    o->sched.kv_budget_bytes = kv_budget_bytes(o->kv_budget);
    o->sched.parallel = o->max_batch;
    o->sched.max_queue = 1 << 20;  // the workers never exceed --max-batch; nothing is refused
    Session session(o->model, o->session);
    const Tokenizer& tok = session.tokenizer();
    http::ChatRenderer chat = http::make_chat_renderer(session.path(), tok, o->chat_template, o->tool_parser);
    if (o->warm_ram && session.has_ram_tier()) {
      const uint64_t evicted = session.warm_ram();
      std::fprintf(stderr, "moe batch: RAM tier warmed%s\n",
                   evicted ? fmt::format(" ({} experts did not fit; raise --ram-budget)", evicted).c_str() : "");
      session.reset_stats();
    }
    serve::Scheduler sched(session.engine(), tok, o->sched);
    // A request without max_tokens reserves the whole context: say when that limits the batch.
    const auto open_ended = uint64_t(std::count_if(in.lines.begin(), in.lines.end(), [](const batch::BatchLine& l) {
      return l.error.empty() && !l.max_tokens;
    }));
    if (const uint64_t full = uint64_t(session.engine().kv_bytes_per_token() * sched.context());
        o->max_tokens == 0 && open_ended > 0 && o->sched.kv_budget_bytes && full > 0 &&
        o->sched.kv_budget_bytes / full < std::min<uint64_t>(open_ended, uint64_t(o->max_batch)))
      std::fprintf(stderr,
                   "moe batch: %llu of the %zu requests lack max_tokens; the KV budget (%s) holds %llu such requests at "
                   "once (each reserves the %lld-token context, %s); give max_tokens, --max-tokens or a shorter --ctx to "
                   "run more together\n",
                   static_cast<unsigned long long>(open_ended), in.lines.size(), format_bytes(o->sched.kv_budget_bytes).c_str(),
                   static_cast<unsigned long long>(o->sched.kv_budget_bytes / full), static_cast<long long>(sched.context()),
                   format_bytes(full).c_str());
    http::Metrics metrics;
    const std::vector<int32_t> stop_ids = session.stop_ids();
    http::ServeContext cx{sched,   tok, chat, model_stem(o->model), stop_ids, o->max_tokens,
                          http::RequestLimits{.vocab_size = tok.vocab_size()}, metrics};
    cx.grammars = std::make_shared<grammar::GrammarCache>(grammar::TokenVocab::from_tokenizer(tok, stop_ids));
    const batch::Handler handle = [&](const std::string& url, const std::string& body) -> std::pair<int, std::string> {
      auto log = std::make_shared<http::RequestLog>();
      try {
        nlohmann::json b = nlohmann::json::parse(body);
        if (b.value("stream", false))
          throw http::bad_request("'stream' is not supported in a batch: each result is written whole.", "stream");
        const http::HandlerResult r = url == "/v1/chat/completions" ? http::handle_chat(cx, body, log, [] { return false; })
                                                                    : http::handle_completion(cx, body, log, [] { return false; });
        return {r.status, r.body};
      } catch (const http::ApiError& e) {
        return {e.status, http::error_json(e).dump()};
      } catch (const std::exception& e) {
        return {500, http::error_json(http::ApiError(500, "server_error", std::string("Internal error: ") + e.what())).dump()};
      }
    };
    batch::Progress progress;
    batch::JobOptions jo{o->output, o->resume, o->max_batch, o->max_tokens};
    const auto t0 = std::chrono::steady_clock::now();
    auto secs = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    std::mutex m;
    std::condition_variable cv;
    bool finished = false;
    const bool tty = ::isatty(2);
    std::thread bar([&] {  // progress on stderr: in place on a terminal, a line every 10 s otherwise
      std::unique_lock lk(m);
      while (!cv.wait_for(lk, std::chrono::milliseconds(tty ? 500 : 10000), [&] { return finished; })) {
        const serve::SchedulerStats st = sched.stats();
        std::fprintf(stderr, tty ? "\r%s\033[K" : "%s\n",
                     progress_line(progress, secs(), st.prefilled_tokens, st.generated_tokens, &st).c_str());
      }
    });
    struct StopBar {
      std::mutex& m;
      std::condition_variable& cv;
      bool& finished;
      std::thread& t;
      ~StopBar() {
        {
          std::lock_guard lk(m);
          finished = true;
        }
        cv.notify_all();
        t.join();
      }
    };
    {
      StopBar stop{m, cv, finished, bar};
      batch::run_job(in.lines, id, jo, handle, progress);
    }
    sched.drain();
    const double wall = secs();
    if (tty) std::fputs("\n", stderr);
    std::string reused;  // what prefix reuse spared (a cached prefix, or one shared with a running request)
    if (const serve::SchedulerStats st = sched.stats(); st.cached_tokens > 0)
      reused = fmt::format(" | {} of {} prompt tokens reused", st.cached_tokens, st.prompt_tokens);
    std::fprintf(stderr, "%s%s\n", progress_line(progress, wall, progress.prompt_tokens, progress.completion_tokens).c_str(),
                 reused.c_str());
    if (o->json) {
      nlohmann::json s = {{"requests", progress.total},      {"done", int64_t(progress.done)},
                          {"already_done", int64_t(progress.skipped)}, {"errors", int64_t(progress.errors)},
                          {"prompt_tokens", int64_t(progress.prompt_tokens)},
                          {"completion_tokens", int64_t(progress.completion_tokens)}, {"seconds", wall},
                          {"prompt_tok_s", wall > 0 ? double(progress.prompt_tokens) / wall : 0.0},
                          {"generated_tok_s", wall > 0 ? double(progress.completion_tokens) / wall : 0.0},
                          {"output", o->output}};
      // Where the time and the bytes went: engine steps, expert reads per step, KV admission
      // and the RAM tier's disk traffic (per generated token).
      const serve::SchedulerStats st = sched.stats();
      s["scheduler"] = {{"steps", st.steps},
                        {"busy_seconds", st.busy_seconds},
                        {"expert_reads", st.expert_reads},
                        {"kv_budget_bytes", o->sched.kv_budget_bytes},
                        {"kv_reserved_peak_bytes", st.peak_kv_reserved_bytes},
                        {"kv_committed_peak_bytes", st.peak_kv_committed_bytes},  // reserved + prefix cache
                        {"kv_peak_bytes", st.peak_kv_bytes},  // what the engine held (shared pages once)
                        {"kv_dtype", o->session.device.kv_dtype},
                        {"kv_budget_waits", st.memory_waits},
                        // Prompt tokens computed, and those reused from the prefix cache or a
                        // running request (cached_tokens in each response's usage).
                        {"prefilled_tokens", st.prefilled_tokens},
                        {"cached_tokens", st.cached_tokens},
                        {"prefix_cache_hits", st.prefix_cache_hits},
                        {"running_shares", st.running_shares}};
      s["session"] = session.stats().json(uint64_t(std::max<int64_t>(1, progress.completion_tokens)));
      std::printf("%s\n", s.dump().c_str());
    }
    return 0;
  };
}

}  // namespace moe::cli
