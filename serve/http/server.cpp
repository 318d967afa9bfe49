#include "serve/http/server.h"

#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include <fmt/format.h>
#include <httplib.h>

#include "serve/http/auth.h"
#include "serve/http/deadline_server.h"

namespace moe::serve::http {

namespace {

// The peer closed its end (or the socket failed). Unread pipelined bytes do not count.
bool hung_up(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

class SocketSink final : public ChunkSink {
 public:
  SocketSink(httplib::DataSink& s, int fd) : s_(s), fd_(fd) {}
  bool write(std::string_view b) override { return s_.write(b.data(), b.size()); }
  bool gone() override { return hung_up(fd_) || !s_.is_writable(); }

 private:
  httplib::DataSink& s_;
  int fd_;
};

thread_local std::shared_ptr<RequestLog> tl_log;  // the generation request this worker serves

void set_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void set_error(httplib::Response& res, const ApiError& e) {
  set_json(res, e.status, dump(error_json(e)));
  if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
}

std::string endpoint_label(const std::string& path) {
  for (const char* p : {"/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics"})
    if (path == p) return p;
  return "other";
}

}  // namespace

struct HttpServer::Impl {
  ServeContext& cx;
  ServerInfo info;
  std::function<std::optional<SessionStats>()> session_stats;
  DeadlineServer svr;  // each request must arrive whole within --request-deadline
  int port = -1;
};

HttpServer::HttpServer(ServeContext& cx, ServerInfo info, std::function<std::optional<SessionStats>()> session_stats,
                       ServerOptions o)
    : o_(std::move(o)),
      impl_(new Impl{cx, std::move(info), std::move(session_stats), DeadlineServer(std::chrono::seconds(o_.request_deadline_s)), -1}) {
  if (o_.api_key.empty() && !is_loopback_host(o_.host))
    throw std::invalid_argument("--host " + o_.host +
                                " is reachable from other machines: give an API key (--api-key KEY or MOE_API_KEY), "
                                "or bind to 127.0.0.1");
  ::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write: the write fails instead of killing us
  DeadlineServer& svr = impl_->svr;
  const SchedulerOptions& so = cx.scheduler.options();
  const int threads = o_.threads > 0 ? o_.threads : std::min(512, so.parallel + so.max_queue + 4);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  svr.set_payload_max_length(o_.max_body);
  svr.set_read_timeout(o_.read_timeout_s, 0);
  svr.set_write_timeout(o_.write_timeout_s, 0);
  svr.set_keep_alive_timeout(5);
  svr.set_tcp_nodelay(true);  // small SSE chunks go out at once

  // Auth before the body is read: a client without the key cannot make us read 8 MiB.
  const std::string key = o_.api_key;
  svr.set_pre_routing_handler([key](const httplib::Request& req, httplib::Response& res) {
    tl_log.reset();  // a request whose line was never logged (its connection died) leaves nothing behind
    if (req.path == "/health" || key.empty()) return httplib::Server::HandlerResponse::Unhandled;
    try {
      check_bearer(req.get_header_value("Authorization"), key);
    } catch (const ApiError& e) {
      set_error(res, e);
      // The body was not read: the connection cannot carry another request.
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  const size_t max_body = o_.max_body;
  const int deadline = o_.request_deadline_s;
  svr.set_error_handler([max_body, deadline](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // ours already
    if (DeadlineServer::deadline_passed()) {
      res.status = 408;
      res.set_header("Connection", "close");
      set_error(res, ApiError(408, "invalid_request_error",
                              fmt::format("The request did not arrive whole within {} s (--request-deadline); send it at once.", deadline),
                              "", "request_timeout"));
      return;
    }
    switch (res.status) {
      case 404:
        set_error(res, ApiError(404, "invalid_request_error", "Unknown request URL: " + req.method + " " + req.path.substr(0, 200) + ".", "", "unknown_url"));
        break;
      case 413:
        set_error(res, ApiError(413, "invalid_request_error",
                                fmt::format("The request body is larger than the server's limit of {} bytes (--max-body).", max_body),
                                "", "request_too_large"));
        break;
      default:
        set_error(res, ApiError(res.status, res.status >= 500 ? "server_error" : "invalid_request_error",
                                fmt::format("HTTP error {}.", res.status)));
    }
  });
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    set_error(res, ApiError(500, "server_error", "Internal error: " + what));
  });

  const bool log = o_.log_requests;
  svr.set_logger([this, log](const httplib::Request& req, const httplib::Response& res) {
    impl_->cx.metrics.request(endpoint_label(req.path), res.status);
    std::shared_ptr<RequestLog> r = std::move(tl_log);
    tl_log.reset();
    if (!log) return;
    std::string line = fmt::format("moe serve: {} {} {}", req.method, req.path.substr(0, 200), res.status);
    if (r && r->prompt_tokens >= 0)
      line += fmt::format(" prompt={} cached={} completion={}", r->prompt_tokens, r->cached_tokens, r->completion_tokens);
    if (r && r->ttft_ms >= 0) line += fmt::format(" ttft={:.0f}ms", r->ttft_ms);
    if (r) line += fmt::format(" total={:.0f}ms", std::chrono::duration<double, std::milli>(Clock::now() - r->start).count());
    if (r && !r->finish.empty()) line += " finish=" + r->finish;
    std::fprintf(stderr, "%s\n", line.c_str());
  });

  // Generation endpoints: parse, submit, answer (a body, or a stream pumped after the headers).
  const auto generation = [this](HandlerResult (*handle)(ServeContext&, const std::string&, const std::shared_ptr<RequestLog>&,
                                                         const std::function<bool()>&)) {
    return [this, handle](const httplib::Request& req, httplib::Response& res) {
      ServeContext& cx = impl_->cx;
      auto log = std::make_shared<RequestLog>();
      tl_log = log;
      try {
        if (cx.draining.load()) throw ApiError(503, "service_unavailable", "The server is shutting down.", "", "draining");
        const int fd = DeadlineServer::current_socket();
        HandlerResult r = handle(cx, req.body, log, [fd] { return hung_up(fd); });
        if (!r.stream) {
          set_json(res, r.status, r.body);
          return;
        }
        std::shared_ptr<StreamJob> job = std::move(r.stream);
        res.set_header("Cache-Control", "no-cache");
        res.set_header("X-Accel-Buffering", "no");
        res.set_chunked_content_provider(
            "text/event-stream",
            [job, fd](size_t, httplib::DataSink& sink) {
              SocketSink out(sink, fd);
              job->run(out);
              sink.done();
              return true;
            },
            [job](bool) { job->cancel(); });
      } catch (const ApiError& e) {
        set_error(res, e);
      } catch (const std::exception& e) {
        set_error(res, ApiError(500, "server_error", std::string("Internal error: ") + e.what()));
      }
    };
  };
  svr.Post("/v1/chat/completions", generation(&handle_chat));
  svr.Post("/v1/completions", generation(&handle_completion));
  svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    set_json(res, 200, dump(models_json(impl_->cx.model_id, unix_time())));
  });
  svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (impl_->cx.draining.load()) set_json(res, 503, R"({"status":"draining"})");
    else set_json(res, 200, R"({"status":"ok"})");
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const std::optional<SessionStats> ss = impl_->session_stats ? impl_->session_stats() : std::nullopt;
    res.status = 200;
    res.set_content(impl_->cx.metrics.render(impl_->info, impl_->cx.scheduler.stats(), ss ? &*ss : nullptr),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  DeadlineServer& svr = impl_->svr;
  const int port = o_.port == 0 ? svr.bind_to_any_port(o_.host) : (svr.bind_to_port(o_.host, o_.port) ? o_.port : -1);
  if (port < 0)
    throw std::runtime_error(fmt::format("cannot listen on {}:{} (address in use, or not an address of this machine)",
                                         o_.host, o_.port));
  impl_->port = port;
  return port;
}

void HttpServer::run() {
  if (impl_->port < 0) bind();
  impl_->svr.listen_after_bind();
}

void HttpServer::begin_drain() { impl_->cx.draining.store(true); }

void HttpServer::stop() {
  if (impl_) impl_->svr.stop();
}

void block_shutdown_signals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
}

int wait_for_shutdown_signal(const std::atomic<bool>& stop) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  const timespec poll{0, 200'000'000};
  while (!stop.load()) {
    const int sig = ::sigtimedwait(&s, nullptr, &poll);
    if (sig > 0) return sig;
  }
  return 0;
}

}  // namespace moe::serve::http
