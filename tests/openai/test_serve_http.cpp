// moe serve in process: models/tiny-moe behind HttpServer on an ephemeral port, driven by
// httplib's client and a raw socket (a client that hangs up mid-stream must free its sequence).
#include <arpa/inet.h>
#include <poll.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "serve/http/chat_renderer.h"
#include "serve/http/server.h"
#include "session/session.h"

using namespace moe;
using namespace moe::serve;
using namespace moe::serve::http;
using nlohmann::json;

namespace {

constexpr const char* kModel = MOE_SOURCE_DIR "/models/tiny-moe";
// EOS suppressed: the model writes until max_tokens.
const json kNoEos = {{"4089", -100}, {"4091", -100}};

class ServeHttp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    SessionOptions so;
    so.device.threads = 1;
    session_ = new Session(kModel, so);
    SchedulerOptions o;
    o.parallel = 2;
    o.max_queue = 4;
    o.prefix_cache_bytes = 64 << 20;
    sched_ = new Scheduler(session_->engine(), session_->tokenizer(), o);
    metrics_ = new Metrics();
    const Tokenizer& tok = session_->tokenizer();
    std::vector<int32_t> stop = session_->model().cfg.eos_ids;
    cx_ = new ServeContext{*sched_, tok, make_chat_renderer(kModel, tok, "", ""), "tiny-moe", stop, 0,
                           RequestLimits{.vocab_size = tok.vocab_size()}, *metrics_};
    ServerOptions opt;
    opt.port = 0;
    opt.log_requests = false;
    server_ = new HttpServer(*cx_, ServerInfo{"tiny-moe", "cpu", sched_->context(), 2}, nullptr, opt);
    port_ = server_->bind();
    thread_ = new std::thread([] { server_->run(); });
  }
  static void TearDownTestSuite() {
    server_->stop();
    thread_->join();
    delete thread_;
    delete server_;
    delete cx_;
    delete metrics_;
    delete sched_;
    delete session_;
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c;
  }
  static httplib::Result post(const std::string& path, const json& body) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c.Post(path.c_str(), body.dump(), "application/json");
  }
  // Events of an SSE body ("data: ..." payloads).
  static std::vector<std::string> events(const std::string& body) {
    std::vector<std::string> out;
    size_t p = 0;
    while (p < body.size()) {
      const size_t e = body.find("\n\n", p);
      EXPECT_NE(e, std::string::npos) << "unterminated event";
      if (e == std::string::npos) break;
      const std::string ev = body.substr(p, e - p);
      EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
      out.push_back(ev.substr(6));
      p = e + 2;
    }
    return out;
  }

  static inline Session* session_ = nullptr;
  static inline Scheduler* sched_ = nullptr;
  static inline Metrics* metrics_ = nullptr;
  static inline ServeContext* cx_ = nullptr;
  static inline HttpServer* server_ = nullptr;
  static inline std::thread* thread_ = nullptr;
  static inline int port_ = 0;
};

}  // namespace

TEST_F(ServeHttp, ModelsAndHealth) {
  auto c = client();
  auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["data"][0]["id"], "tiny-moe");
  r = c.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_NE(r->body.find("# TYPE moe_requests_total counter"), std::string::npos);
}

TEST_F(ServeHttp, ChatCompletion) {
  auto r = post("/v1/chat/completions", {{"model", "any-name"},
                                         {"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                                         {"max_tokens", 8},
                                         {"temperature", 0}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "tiny-moe");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(j["choices"][0]["message"]["content"].is_string());
  const std::string finish = j["choices"][0]["finish_reason"];
  EXPECT_TRUE(finish == "stop" || finish == "length") << finish;
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 0);
  EXPECT_LE(j["usage"]["completion_tokens"].get<int>(), 8);
  EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());
}

TEST_F(ServeHttp, ToolCallIsParsed) {
  const json tools = {{{"type", "function"},
                       {"function", {{"name", "median"}, {"parameters", {{"type", "object"}}}}}}};
  auto r = post("/v1/chat/completions",
                {{"messages", {{{"role", "user"}, {"content", "What is the median of 3, 10, 4, 9?"}}}},
                 {"tools", tools},
                 {"max_tokens", 60},
                 {"temperature", 0}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  // tiny-moe was trained to call median here (greedy); the shape is what matters.
  const json& m = j["choices"][0]["message"];
  ASSERT_TRUE(m.contains("tool_calls")) << r->body;
  EXPECT_EQ(m["tool_calls"][0]["type"], "function");
  EXPECT_EQ(m["tool_calls"][0]["function"]["name"], "median");
  EXPECT_TRUE(json::parse(m["tool_calls"][0]["function"]["arguments"].get<std::string>()).is_object());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
}

TEST_F(ServeHttp, ChatStream) {
  auto r = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                                         {"max_tokens", 6},
                                         {"stream", true},
                                         {"stream_options", {{"include_usage", true}}},
                                         {"logit_bias", kNoEos}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  const std::vector<std::string> ev = events(r->body);
  ASSERT_GE(ev.size(), 4u);
  EXPECT_EQ(ev.back(), "[DONE]");
  const json first = json::parse(ev[0]);
  EXPECT_EQ(first["choices"][0]["delta"], json({{"content", ""}, {"role", "assistant"}}));
  const json fin = json::parse(ev[ev.size() - 3]);
  EXPECT_EQ(fin["choices"][0]["finish_reason"], "length");
  const json usage = json::parse(ev[ev.size() - 2]);
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 6);
  std::string text;
  for (size_t i = 1; i + 3 < ev.size(); ++i) {
    const json c = json::parse(ev[i]);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_EQ(c["id"], first["id"]);
    EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
    text += c["choices"][0]["delta"].value("content", "");
  }
  EXPECT_FALSE(text.empty());
}

TEST_F(ServeHttp, CompletionEchoLogprobs) {
  auto r = post("/v1/completions", {{"prompt", "def f(x):"}, {"max_tokens", 3}, {"logprobs", 1}, {"echo", true},
                                    {"temperature", 0}, {"logit_bias", kNoEos}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  const std::string text = j["choices"][0]["text"];
  EXPECT_EQ(text.rfind("def f(x):", 0), 0u) << text;
  const json& lp = j["choices"][0]["logprobs"];
  const int prompt = j["usage"]["prompt_tokens"];
  ASSERT_EQ(lp["tokens"].size(), size_t(prompt + 3));
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["token_logprobs"][1].is_number());
  std::string joined;
  for (const auto& t : lp["tokens"]) joined += t.get<std::string>();
  EXPECT_EQ(joined, text);
  EXPECT_EQ(lp["text_offset"][0], 0);
}

TEST_F(ServeHttp, Errors) {
  auto r = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"n", 2}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["param"], "n");
  r = post("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 5000}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  const json e = json::parse(r->body)["error"];
  EXPECT_EQ(e["code"], "context_length_exceeded");
  EXPECT_NE(e["message"].get<std::string>().find("maximum context length is 1024 tokens"), std::string::npos);
  auto c = client();
  r = c.Post("/v1/chat/completions", "{nope", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = c.Get("/v1/unknown");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_TRUE(json::parse(r->body).contains("error"));
}

// A client that hangs up mid-stream: its request is cancelled and its sequence freed.
TEST_F(ServeHttp, DisconnectMidStreamFreesTheSequence) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port_));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const std::string body = json{{"prompt", "def fib(n):"}, {"max_tokens", 900}, {"stream", true}, {"logit_bias", kNoEos}}.dump();
  const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), ssize_t(req.size()));
  char buf[4096];
  size_t got = 0;
  while (got < 2000) {  // headers and a few chunks: it is generating
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    got += size_t(n);
  }
  EXPECT_GE(sched_->stats().running, 1);
  ::close(fd);
  const auto t0 = std::chrono::steady_clock::now();
  while (sched_->stats().running != 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5))
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(sched_->stats().running, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
}

TEST(ServeHttpOptions, NonLoopbackNeedsAKey) {
  SessionOptions so;
  so.device.threads = 1;
  Session session(kModel, so);
  Scheduler sched(session.engine(), session.tokenizer(), SchedulerOptions{});
  Metrics metrics;
  ServeContext cx{sched, session.tokenizer(), {}, "m", {}, 0, {}, metrics};
  ServerOptions o;
  o.host = "0.0.0.0";
  EXPECT_THROW(HttpServer(cx, {}, nullptr, o), std::invalid_argument);
  o.api_key = "k";
  o.port = 0;
  HttpServer s(cx, {}, nullptr, o);
  const int port = s.bind();
  std::thread t([&] { s.run(); });
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = c.Get("/v1/models", {{"Authorization", "Bearer k"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = c.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  s.stop();
  t.join();
}

// A client that trickles its request (slowloris) is cut off at the request deadline, though each
// byte comes well within the read timeout: a 408 once the headers are in, the connection closed
// before. The only HTTP thread is then free for the next client, and pipelined requests still get
// their answers in turn.
TEST_F(ServeHttp, ATricklingClientIsCutOffAtTheRequestDeadline) {
  ServerOptions o;  // a second server on the suite's model, with one HTTP thread
  o.port = 0;
  o.log_requests = false;
  o.threads = 1;
  o.read_timeout_s = 10;
  o.request_deadline_s = 1;
  HttpServer s(*cx_, {}, nullptr, o);
  const int port = s.bind();
  std::thread t([&] { s.run(); });
  const auto connect_raw = [port] {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  };
  // Sends `first`, then one byte of `drip` every 200 ms until the server answers or closes (what
  // it sent back), or 6 s pass (nullopt: still open).
  const auto trickle = [&](const std::string& first, char drip) -> std::optional<std::string> {
    const int fd = connect_raw();
    EXPECT_EQ(::send(fd, first.data(), first.size(), MSG_NOSIGNAL), ssize_t(first.size()));
    const auto t0 = std::chrono::steady_clock::now();
    std::optional<std::string> got;
    while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(6)) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 200) > 0) {
        std::string all;
        char buf[4096];
        for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) all.append(buf, size_t(n));
        got = all;
        break;
      }
      if (::send(fd, &drip, 1, MSG_NOSIGNAL) != 1) {
        got = std::string();
        break;
      }
    }
    ::close(fd);
    return got;
  };
  // The body trickles: the headers were read, so the client is told why.
  const auto body = trickle("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", ' ');
  ASSERT_TRUE(body.has_value()) << "the connection was still open after 6 s";
  EXPECT_NE(body->find("HTTP/1.1 408"), std::string::npos) << *body;
  EXPECT_NE(body->find("request_timeout"), std::string::npos) << *body;
  EXPECT_NE(body->find("--request-deadline"), std::string::npos) << *body;
  // The headers trickle: closed without an answer.
  const auto headers = trickle("POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-A: ", 'a');
  ASSERT_TRUE(headers.has_value()) << "the connection was still open after 6 s";
  httplib::Client c("127.0.0.1", port);
  const auto r = c.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // Pipelined: two requests in one write get two answers (bytes read past the first are kept).
  const int fd = connect_raw();
  const std::string two = "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, two.data(), two.size(), MSG_NOSIGNAL), ssize_t(two.size()));
  std::string all;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) all.append(buf, size_t(n));
  ::close(fd);
  EXPECT_NE(all.find("\"status\":\"ok\""), std::string::npos) << all;
  EXPECT_NE(all.find("\"object\":\"list\""), std::string::npos) << all;
  s.stop();
  t.join();
}
