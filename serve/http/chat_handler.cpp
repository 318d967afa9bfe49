// POST /v1/chat/completions: messages -> the model's chat template -> tokens -> the scheduler;
// its text -> the output parser (content, reasoning, tool calls) -> a chat.completion or its
// chunks.
#include <utility>

#include "serve/http/constraint_setup.h"
#include "serve/http/handler_common.h"
#include "serve/parsers/output_parser.h"

namespace moe::serve::http {

namespace {

struct ChatSetup {
  ChatRequest req;
  std::shared_ptr<RequestHandle> handle;
  std::unique_ptr<OutputParser> parser;
  std::string id;
};

ChatSetup start_chat(ServeContext& cx, const std::string& body) {
  ChatSetup s;
  s.req = parse_chat_request(body, cx.limits);
  if (!cx.chat.render)
    throw ApiError(400, "invalid_request_error",
                   "This model has no chat template: pass --chat-template FILE (moe serve, moe batch), or use "
                   "/v1/completions.",
                   "messages", "no_chat_template");
  std::string prompt;
  try {
    prompt = cx.chat.render(s.req.messages, s.req.tools, s.req.chat_template_kwargs);
  } catch (const ApiError&) {
    throw;
  } catch (const std::exception& e) {
    throw ApiError(400, "invalid_request_error", std::string("The chat template refused the messages: ") + e.what(),
                   "messages", "chat_template_error");
  }
  GenerationRequest g;
  g.prompt = cx.tok.encode(prompt, false);  // the template wrote the special tokens (transformers does the same)
  if (g.prompt.empty()) throw bad_request("The messages render to an empty prompt.", "messages");
  s.id = random_id("chatcmpl-");
  g.id = s.id;
  g.max_tokens = int(resolve_max_tokens(cx, int64_t(g.prompt.size()), s.req.max_tokens));
  g.sampling = s.req.sampling;
  g.stop = s.req.stop;
  g.stop_ids = cx.stop_ids;
  g.logprobs = s.req.logprobs ? s.req.top_logprobs : -1;
  ParserOptions po;
  po.family = cx.chat.parser_family;
  po.tools_enabled = s.req.tools_enabled;
  po.starts_in_reasoning = ends_in_reasoning(prompt);
  if (!s.req.tools.is_null()) po.tools = nlohmann::json::parse(s.req.tools.dump());  // the parser's JSON type
  g.constraint = make_constraint(cx, s.req.constraint, s.req.tools, po.starts_in_reasoning);
  s.parser = make_output_parser(po);
  s.handle = submit(cx, std::move(g));
  return s;
}

class ChatStream final : public StreamJob {
 public:
  ChatStream(ServeContext& cx, ChatSetup s, Clock::time_point start, std::shared_ptr<RequestLog> log)
      : cx_(cx), s_(std::move(s)), log_(std::move(log)), pump_{cx, s_.handle, start, *log_},
        chunks_(s_.id, unix_time(), cx.model_id), text_(token_text_fn(cx.tok)) {}
  ~ChatStream() override { cancel(); }

  void cancel() override {
    if (!pump_.finished) s_.handle->cancel();
  }

  void run(ChunkSink& sink) override {
    if (!send(sink, chunks_.role())) return;
    while (std::optional<GenerationEvent> ev = pump_.next([&] { return sink.gone(); })) {
      std::optional<ojson> lp;
      if (s_.req.logprobs && !ev->logprobs.empty())
        lp = ojson{{"content", chat_logprobs_content(ev->logprobs, s_.req.top_logprobs, text_)}};
      if (!delta(sink, s_.parser->feed(ev->text), lp ? &*lp : nullptr)) return;
      if (ev->finish == FinishReason::none) continue;
      if (!delta(sink, s_.parser->finish(), nullptr)) return;
      if (ev->finish == FinishReason::error || ev->finish == FinishReason::cancelled) {
        send(sink, sse_event(error_json(generation_error(*ev))));
        send(sink, std::string(kSseDone));
        return;
      }
      if (!send(sink, chunks_.finish(chat_finish_reason(ev->finish, has_calls_)))) return;
      if (s_.req.include_usage &&
          !send(sink, chunks_.usage({ev->prompt_tokens, ev->completion_tokens, ev->cached_tokens})))
        return;
      send(sink, std::string(kSseDone));
      return;
    }
  }

 private:
  bool delta(ChunkSink& sink, const OutputDelta& d, const ojson* lp) {
    if (!d.tool_calls.empty()) has_calls_ = true;
    const std::string chunk = chunks_.delta(d, lp);
    return chunk.empty() || send(sink, chunk);
  }
  bool send(ChunkSink& sink, const std::string& bytes) { return pump_.send(sink, bytes); }

  ServeContext& cx_;
  ChatSetup s_;
  std::shared_ptr<RequestLog> log_;
  EventPump pump_;
  ChatChunker chunks_;
  TokenText text_;
  bool has_calls_ = false;
};

}  // namespace

HandlerResult handle_chat(ServeContext& cx, const std::string& body, const std::shared_ptr<RequestLog>& log,
                          const std::function<bool()>& gone) {
  const Clock::time_point start = Clock::now();
  ChatSetup s = start_chat(cx, body);
  if (s.req.stream) return {200, {}, std::make_shared<ChatStream>(cx, std::move(s), start, log)};

  EventPump pump{cx, s.handle, start, *log};
  const CancelUnlessFinished guard{pump};
  ChatCompletion c;
  c.id = s.id;
  c.model = cx.model_id;
  c.created = unix_time();
  ojson lps = ojson::array();
  const TokenText text = s.req.logprobs ? token_text_fn(cx.tok) : TokenText{};
  while (std::optional<GenerationEvent> ev = pump.next(gone)) {
    merge_delta(c.message, s.parser->feed(ev->text));
    if (s.req.logprobs)
      for (auto& e : chat_logprobs_content(ev->logprobs, s.req.top_logprobs, text)) lps.push_back(std::move(e));
    if (ev->finish == FinishReason::none) continue;
    merge_delta(c.message, s.parser->finish());
    if (ev->finish == FinishReason::error || ev->finish == FinishReason::cancelled) throw generation_error(*ev);
    c.finish_reason = chat_finish_reason(ev->finish, !c.message.tool_calls.empty());
    c.usage = {ev->prompt_tokens, ev->completion_tokens, ev->cached_tokens};
    if (s.req.logprobs) c.logprobs = ojson{{"content", std::move(lps)}};
    return {200, dump(chat_completion_json(c)), nullptr};
  }
  return {499, {}, nullptr};  // the client went away; the request is cancelled
}

}  // namespace moe::serve::http
