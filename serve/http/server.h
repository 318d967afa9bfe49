// The HTTP server of `moe serve` (httplib): routes, auth, body limits, timeouts, streaming,
// client disconnects, graceful shutdown.
//
//   POST /v1/chat/completions   POST /v1/completions   GET /v1/models   GET /health   GET /metrics
//
// Any `model` name is accepted and responses name the served model (as local servers do: a
// client configured for another name still works). With an API key, /v1/* and /metrics need
// `Authorization: Bearer KEY`; /health never does. Unknown routes are 404, bodies over the
// limit 413, all errors in OpenAI's {"error": {...}} shape.
// Threads: httplib's pool runs one connection per thread; a generation handler submits to the
// scheduler and waits on its handle. A client that hangs up (seen by a failed write or a
// closed socket while waiting) has its request cancelled at once.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "serve/http/handler_common.h"
#include "serve/http/metrics.h"
#include "session/session_stats.h"

namespace moe::serve::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0: a free port (bind() says which)
  std::string api_key;              // empty: no auth (refused unless the host is loopback)
  size_t max_body = size_t(8) << 20;
  int threads = 0;                  // HTTP worker threads (0: parallel + max_queue + 4, at most 512)
  int read_timeout_s = 10;          // per read of a request: a client that stalls longer is dropped
  int request_deadline_s = 30;      // for a whole request to arrive: a client that trickles it is dropped
  int write_timeout_s = 30;         // per write: a client that stops reading is dropped (and cancelled)
  bool log_requests = true;         // one stderr line per request
};

class HttpServer {
 public:
  // `session_stats` (may be empty) gives the session's figures for /metrics; `info` names the
  // model and engine there. Throws std::invalid_argument when the options are unsafe (a
  // non-loopback host without an API key).
  HttpServer(ServeContext& cx, ServerInfo info, std::function<std::optional<SessionStats>()> session_stats,
             ServerOptions o);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int bind();   // binds host:port; returns the port; throws std::runtime_error when it cannot
  void run();   // serves until stop() (after bind())
  // New requests get 503 and /health says "draining"; running ones go on.
  void begin_drain();
  void stop();  // stops accepting, closes the listener; run() returns once handlers end
  const ServerOptions& options() const { return o_; }

 private:
  struct Impl;
  ServerOptions o_;
  std::unique_ptr<Impl> impl_;
};

// Blocks SIGINT and SIGTERM in this thread and those it starts later: call first thing, before
// any thread exists, then wait_for_shutdown_signal on a thread of its own.
void block_shutdown_signals();
// Waits for SIGINT or SIGTERM (returns its number), or until `stop` turns true (returns 0).
int wait_for_shutdown_signal(const std::atomic<bool>& stop);

}  // namespace moe::serve::http
