// What the generation handlers share: the server's view of the model (scheduler, tokenizer,
// chat template, limits), the stream job the server pumps into an HTTP response, submitting
// with the scheduler's errors mapped to HTTP statuses, and the per-request log record.
// No httplib here: the server (server.cpp) adapts its sockets to ChunkSink.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/tokenizer/tokenizer.h"
#include "serve/grammar/constraint_spec.h"
#include "serve/http/metrics.h"
#include "serve/http/openai_request.h"
#include "serve/http/openai_response.h"
#include "serve/scheduler/scheduler.h"

namespace moe::serve::http {

// The model's chat template as the handlers need it. render() throws std::exception with a
// message for the client (a template's raise_exception, a missing variable): that is a 400.
struct ChatRenderer {
  std::function<std::string(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                            const nlohmann::ordered_json& kwargs)>
      render;  // empty: the model has no chat template (chat requests get a 400 saying so)
  std::string parser_family = "none";  // tool-call / reasoning syntax of the template's outputs
};

struct ServeContext {
  Scheduler& scheduler;
  Tokenizer tok;                 // a cheap shared copy
  ChatRenderer chat;
  std::string model_id;          // what responses and /v1/models name
  std::vector<int32_t> stop_ids; // the model's EOS ids and the tokenizer's
  int64_t max_tokens_cap = 0;    // --max-tokens (0: the rest of the context)
  RequestLimits limits;
  Metrics& metrics;
  std::atomic<bool> draining{false};
  // Compiled grammars over this vocabulary (end tokens: stop_ids); null: constraints are refused.
  std::shared_ptr<grammar::GrammarCache> grammars{};
};

// Where a stream's bytes go. write() false: the client is gone. gone(): it hung up even
// though nothing was written (checked while waiting for tokens).
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  virtual bool write(std::string_view bytes) = 0;
  virtual bool gone() = 0;
};

// A streamed response after its headers: run() writes every event until the end or until the
// client goes away (then the request is cancelled at once). cancel() is for a stream that is
// never run (the connection died before the body).
class StreamJob {
 public:
  virtual ~StreamJob() = default;
  virtual void run(ChunkSink& sink) = 0;
  virtual void cancel() = 0;
};

// One request's line in the log (method, path, status come from the server).
struct RequestLog {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  int64_t prompt_tokens = -1, cached_tokens = 0, completion_tokens = 0;
  double ttft_ms = -1;
  std::string finish;
};

// What a generation handler answers: a body (status + JSON) or a stream (status 200).
struct HandlerResult {
  int status = 200;
  std::string body;
  std::shared_ptr<StreamJob> stream;
};

using Clock = std::chrono::steady_clock;

// The request's token budget: max_tokens (or the rest of the context, capped by --max-tokens);
// 400 context_length_exceeded when prompt + max_tokens is over the context.
int64_t resolve_max_tokens(const ServeContext& cx, int64_t prompt_tokens, const std::optional<int64_t>& asked);

// Submits; the scheduler's refusals as ApiError: queue_full 429, too_long 400, draining 503,
// invalid 400.
std::shared_ptr<RequestHandle> submit(ServeContext& cx, GenerationRequest r);

// The error a client hears for a generation that ended in error (500) or was cancelled by the
// server (503).
ApiError generation_error(const GenerationEvent& ev);

// The id's text alone (logprob alternatives).
TokenText token_text_fn(const Tokenizer& tok);

// Waits for the next event of `h`, cancelling the request when `gone()` says the client left
// (then returns nullopt); polls every `poll`. Records first-token and inter-token times.
struct EventPump {
  ServeContext& cx;
  std::shared_ptr<RequestHandle> h;
  Clock::time_point start;
  RequestLog& log;  // owned by the caller (the stream job holds it with the handle)
  Clock::time_point last{}, last_check = Clock::now();
  bool finished = false;
  std::optional<GenerationEvent> next(const std::function<bool()>& gone);
  void on_finish(const GenerationEvent& ev);  // usage into the log, metrics
  // Writes a stream's bytes; a failed write means the client is gone: the request is cancelled
  // at once (its sequence freed at the next step) and false returned.
  bool send(ChunkSink& sink, const std::string& bytes);
};

// POST /v1/chat/completions and /v1/completions. Throw ApiError for what the client must fix.
// `gone` tells a non-streamed request that its client hung up (it is then cancelled); `log`
// is filled as the request runs (a stream keeps it until its last event).
// Cancels the pump's request when a handler leaves before its last event (an exception).
struct CancelUnlessFinished {
  EventPump& p;
  ~CancelUnlessFinished() {
    if (!p.finished) p.h->cancel();
  }
};

HandlerResult handle_chat(ServeContext& cx, const std::string& body, const std::shared_ptr<RequestLog>& log,
                          const std::function<bool()>& gone);
HandlerResult handle_completion(ServeContext& cx, const std::string& body, const std::shared_ptr<RequestLog>& log,
                                const std::function<bool()>& gone);

// True when the rendered prompt ends inside an open thinking block (`<think>` not closed).
bool ends_in_reasoning(std::string_view prompt);

}  // namespace moe::serve::http
