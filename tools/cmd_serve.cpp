// moe serve: an OpenAI-compatible HTTP server over one model (serve/http): flags -> Session ->
// Scheduler -> HttpServer. SIGINT/SIGTERM drain: new requests get 503, running ones finish,
// then the process exits 0 (a second signal exits at once).
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "serve/grammar/token_vocab.h"
#include "serve/http/auth.h"
#include "serve/http/chat_renderer.h"
#include "serve/http/server.h"
#include "serve/scheduler/scheduler.h"
#include "session/session.h"
#include "storage/byte_size.h"
#include "tools/commands.h"
#include "tools/scheduler_flags.h"
#include "tools/model_files.h"
#include "tools/session_flags.h"

namespace moe::cli {

Runner add_serve(CLI::App& app) {
  struct Opts {
    std::string model, served_name, chat_template, tool_parser, api_key, max_body = "8MiB", prefix_cache = "1GiB";
    std::string kv_budget = "off";  // --parallel x --ctx bounds the KV already
    serve::http::ServerOptions server;
    serve::SchedulerOptions sched;
    int64_t max_tokens = 0;
    SessionOptions session;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("serve", "Serve the model over an OpenAI-compatible HTTP API "
                                            "(/v1/chat/completions, /v1/completions, /v1/models, /health, /metrics)");
  add_scheduler_flags(c, o->sched, o->kv_budget);
  add_storage_flags(c, o->session.storage);
  add_prefetch_flags(c, o->session.prefetch);
  add_device_flags(c, o->session.device);
  add_threads_flag(c, o->session.device.threads)->capture_default_str();
  c->add_option("--model,-m", o->model, "Hugging Face model directory or .moepack file")->required();
  c->add_option("--host", o->server.host, "Address to listen on (anything but loopback needs --api-key)")->capture_default_str();
  c->add_option("--port", o->server.port, "TCP port (0: any free port)")->check(CLI::Range(0, 65535))->capture_default_str();
  c->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' (default: $MOE_API_KEY)");
  c->add_option("--served-model-name", o->served_name, "Model id in /v1/models and responses (default: the model path's name)");
  c->add_option("--chat-template", o->chat_template, "Jinja chat template file (default: the model's)");
  c->add_option("--tool-parser", o->tool_parser, "Tool-call / reasoning syntax of the outputs (default: detected from the chat template): " +
                                                    serve::http::tool_parser_names());
  c->add_option("--parallel", o->sched.parallel, "Sequences decoded at once")->check(CLI::Range(1, 1024))->capture_default_str();
  c->add_option("--max-queue", o->sched.max_queue, "Requests waiting beyond --parallel; more get 429")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  c->add_option("--prefix-cache", o->prefix_cache, "KV memory for reusing cached prompt prefixes (a size; 0: off)")->capture_default_str();
  c->add_option("--max-tokens", o->max_tokens, "Most tokens one request may generate (0: the rest of the context)")
      ->check(CLI::Range(int64_t(0), std::numeric_limits<int64_t>::max()))
      ->capture_default_str();
  c->add_option("--max-body", o->max_body, "Largest request body; bigger gets 413")->capture_default_str();
  c->add_option("--threads-http", o->server.threads, "HTTP worker threads (0: --parallel + --max-queue + 4, at most 512)")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  c->add_option("--request-deadline", o->server.request_deadline_s,
                 "Seconds a request has to arrive whole (line, headers, body); a client that trickles it gets 408 and is dropped")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  return [o] {
    namespace http = serve::http;
    if (o->api_key.empty())
      if (const char* k = std::getenv("MOE_API_KEY")) o->api_key = k;
    o->server.api_key = o->api_key;
    if (o->api_key.empty() && !http::is_loopback_host(o->server.host))
      throw std::invalid_argument("--host " + o->server.host +
                                  " is reachable from other machines: give an API key (--api-key KEY or MOE_API_KEY), or "
                                  "listen on 127.0.0.1");
    o->server.max_body = size_t(size_or_off(o->max_body, "--max-body"));
    if (o->server.max_body == 0) throw std::invalid_argument("--max-body: must be more than 0");
    o->sched.prefix_cache_bytes = size_or_off(o->prefix_cache, "--prefix-cache");
    o->sched.kv_budget_bytes = kv_budget_bytes(o->kv_budget);

    // Signals wait on a thread of their own (blocked everywhere else, set before any thread starts).
    http::block_shutdown_signals();
    std::mutex m;
    http::HttpServer* server = nullptr;
    serve::Scheduler* scheduler = nullptr;
    bool stopped = false;  // run() returned (guarded by m)
    std::atomic<bool> quit{false};
    std::thread signals([&] {
      const int sig = http::wait_for_shutdown_signal(quit);
      if (!sig) return;
      std::unique_lock lk(m);
      if (stopped) return;  // already shutting down
      if (!server) {
        std::fprintf(stderr, "moe serve: interrupted while starting\n");
        std::_Exit(128 + sig);
      }
      std::fprintf(stderr, "moe serve: %s: draining (running requests finish; send it again to stop at once)\n",
                   sig == SIGINT ? "SIGINT" : "SIGTERM");
      server->begin_drain();
      std::atomic<bool> drained{false};
      std::thread again([&] {
        if (const int s2 = http::wait_for_shutdown_signal(drained)) {
          std::fprintf(stderr, "moe serve: stopping now\n");
          std::_Exit(128 + s2);
        }
      });
      scheduler->drain();
      drained = true;
      again.join();
      server->stop();
    });
    struct JoinSignals {
      std::atomic<bool>& quit;
      std::thread& t;
      ~JoinSignals() {
        quit = true;
        t.join();
      }
    } join_signals{quit, signals};

    Session session(o->model, o->session);
    const Tokenizer& tok = session.tokenizer();
    InferenceEngine& engine = session.engine();
    http::ChatRenderer chat = http::make_chat_renderer(session.path(), tok, o->chat_template, o->tool_parser);
    serve::Scheduler sched(engine, tok, o->sched);
    http::Metrics metrics;
    const std::vector<int32_t> stop_ids = session.stop_ids();
    http::ServeContext cx{sched, tok, chat, o->served_name.empty() ? model_stem(session.path().string()) : o->served_name,
                          stop_ids, o->max_tokens, http::RequestLimits{.vocab_size = tok.vocab_size()}, metrics};
    cx.grammars = std::make_shared<grammar::GrammarCache>(grammar::TokenVocab::from_tokenizer(tok, stop_ids));
    http::ServerInfo info{cx.model_id, engine.backend(), sched.context(), o->sched.parallel};
    const Session::StepBytes sb = session.step_bytes();
    info.dense_bytes = sb.dense;
    info.expert_bytes = sb.expert;
    http::HttpServer srv(
        cx, info,
        [&]() -> std::optional<SessionStats> {
          std::optional<SessionStats> st;
          sched.run_between_steps([&] { st = session.stats(); });  // never during a step
          return st;
        },
        o->server);
    const int port = srv.bind();
    {
      std::lock_guard lk(m);
      server = &srv;
      scheduler = &sched;
    }
    std::fprintf(stderr, "%s\n",
                 fmt::format("moe serve: listening on http://{}:{} | model {} ({}) | backend {} | context {} | parallel {} | "
                             "KV budget {} | prefix cache {} | parser {}{}",
                             o->server.host, port, cx.model_id, session.path().string(), engine.backend(), sched.context(),
                             o->sched.parallel, o->sched.kv_budget_bytes ? format_bytes(o->sched.kv_budget_bytes) : "off",
                             o->sched.prefix_cache_bytes ? format_bytes(o->sched.prefix_cache_bytes) : "off",
                             chat.parser_family, o->api_key.empty() ? "" : " | API key required")
                     .c_str());
    srv.run();
    {
      std::lock_guard lk(m);
      server = nullptr;
      stopped = true;
    }
    std::fprintf(stderr, "moe serve: stopped\n");
    return 0;
  };
}

}  // namespace moe::cli
