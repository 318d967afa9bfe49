// POST /v1/completions: a text prompt (tokenized with the model's special tokens, as `moe run`
// does) or token ids -> the scheduler -> a text_completion or its chunks. `echo` puts the
// prompt before the completion; `logprobs` gives the legacy per-token figures (with echo, the
// prompt's tokens too, the first without a logprob).
#include <utility>

#include "serve/http/constraint_setup.h"
#include "serve/http/handler_common.h"

namespace moe::serve::http {

namespace {

struct CompletionSetup {
  CompletionRequest req;
  std::shared_ptr<RequestHandle> handle;
  std::string id, echo_text;
  std::vector<int32_t> prompt;
  int64_t prompt_chars = 0;  // where the first logprob token's text_offset starts
};

CompletionSetup start_completion(ServeContext& cx, const std::string& body) {
  CompletionSetup s;
  s.req = parse_completion_request(body, cx.limits);
  GenerationRequest g;
  if (s.req.token_prompt) {
    g.prompt = s.req.prompt_tokens;
    if (s.req.echo) s.echo_text = cx.tok.decode(g.prompt, false);
  } else {
    g.prompt = cx.tok.encode(s.req.prompt, true);
    if (s.req.echo) s.echo_text = s.req.prompt;
  }
  if (g.prompt.empty()) throw bad_request("The prompt is empty.", "prompt");
  s.id = random_id("cmpl-");
  g.id = s.id;
  g.max_tokens = int(resolve_max_tokens(cx, int64_t(g.prompt.size()), s.req.max_tokens));
  g.sampling = s.req.sampling;
  g.stop = s.req.stop;
  g.stop_ids = cx.stop_ids;
  g.logprobs = s.req.logprobs;
  g.prompt_logprobs = s.req.echo && s.req.logprobs >= 0;
  g.constraint = make_constraint(cx, s.req.constraint, nullptr, false);
  s.prompt = g.prompt;
  // Legacy text_offset counts from the prompt's start, echoed or not.
  s.prompt_chars = s.req.echo ? 0 : utf8_length(s.req.token_prompt ? cx.tok.decode(g.prompt, false) : s.req.prompt);
  s.handle = submit(cx, std::move(g));
  return s;
}

// Adds an event's tokens to the legacy logprobs; with echo, the prompt's first (on the first
// event): its first token has no logprob, whether or not the scheduler lists it.
void add_logprobs(CompletionLogprobs& lp, const GenerationEvent& ev, int top, const TokenText& text,
                  const CompletionSetup& s, bool& prompt_done) {
  if (s.req.echo && !prompt_done) {
    prompt_done = true;
    const std::vector<TokenLogprob>& p = ev.prompt_logprobs;
    const bool has_first = p.size() >= s.prompt.size();
    if (!has_first) lp.add(TokenLogprob{s.prompt[0], text(s.prompt[0]), 0.0f, {}}, top, text, false);
    for (size_t i = 0; i < p.size(); ++i) lp.add(p[i], top, text, !(has_first && i == 0));
  }
  for (const TokenLogprob& t : ev.logprobs) lp.add(t, top, text);
}

class CompletionStream final : public StreamJob {
 public:
  CompletionStream(ServeContext& cx, CompletionSetup s, Clock::time_point start, std::shared_ptr<RequestLog> log)
      : cx_(cx), s_(std::move(s)), log_(std::move(log)), pump_{cx, s_.handle, start, *log_}, created_(unix_time()),
        text_(token_text_fn(cx.tok)) {
    lp_.offset = s_.prompt_chars;
  }
  ~CompletionStream() override { cancel(); }
  void cancel() override {
    if (!pump_.finished) s_.handle->cancel();
  }

  void run(ChunkSink& sink) override {
    const bool logprobs = s_.req.logprobs >= 0;
    std::string pending = s_.echo_text;  // the echoed prompt goes out with the first event
    while (std::optional<GenerationEvent> ev = pump_.next([&] { return sink.gone(); })) {
      if (logprobs) add_logprobs(lp_, *ev, s_.req.logprobs, text_, s_, prompt_done_);
      pending += ev->text;
      if (ev->finish == FinishReason::error || ev->finish == FinishReason::cancelled) {
        send(sink, sse_event(error_json(generation_error(*ev))));
        send(sink, std::string(kSseDone));
        return;
      }
      const char* finish = ev->finish == FinishReason::none ? nullptr : completion_finish_reason(ev->finish);
      if (!pending.empty() || finish || (logprobs && !lp_.tokens.empty())) {
        const ojson lpj = logprobs ? lp_.json() : ojson();
        if (!send(sink, text_completion_chunk(s_.id, created_, cx_.model_id, pending, logprobs ? &lpj : nullptr, finish)))
          return;
        pending.clear();
        lp_.clear_tokens();
      }
      if (!finish) continue;
      if (s_.req.include_usage &&
          !send(sink, text_completion_usage_chunk(s_.id, created_, cx_.model_id,
                                                  {ev->prompt_tokens, ev->completion_tokens, ev->cached_tokens})))
        return;
      send(sink, std::string(kSseDone));
      return;
    }
  }

 private:
  bool send(ChunkSink& sink, const std::string& bytes) { return pump_.send(sink, bytes); }

  ServeContext& cx_;
  CompletionSetup s_;
  std::shared_ptr<RequestLog> log_;
  EventPump pump_;
  int64_t created_;
  TokenText text_;
  CompletionLogprobs lp_;
  bool prompt_done_ = false;
};

}  // namespace

HandlerResult handle_completion(ServeContext& cx, const std::string& body, const std::shared_ptr<RequestLog>& log,
                                const std::function<bool()>& gone) {
  const Clock::time_point start = Clock::now();
  CompletionSetup s = start_completion(cx, body);
  if (s.req.stream) return {200, {}, std::make_shared<CompletionStream>(cx, std::move(s), start, log)};

  EventPump pump{cx, s.handle, start, *log};
  const CancelUnlessFinished guard{pump};
  TextCompletion c;
  c.id = s.id;
  c.model = cx.model_id;
  c.created = unix_time();
  c.text = s.echo_text;
  CompletionLogprobs lp;
  lp.offset = s.prompt_chars;
  bool prompt_done = false;
  const TokenText text = s.req.logprobs >= 0 ? token_text_fn(cx.tok) : TokenText{};
  while (std::optional<GenerationEvent> ev = pump.next(gone)) {
    c.text += ev->text;
    if (s.req.logprobs >= 0) add_logprobs(lp, *ev, s.req.logprobs, text, s, prompt_done);
    if (ev->finish == FinishReason::none) continue;
    if (ev->finish == FinishReason::error || ev->finish == FinishReason::cancelled) throw generation_error(*ev);
    c.finish_reason = completion_finish_reason(ev->finish);
    c.usage = {ev->prompt_tokens, ev->completion_tokens, ev->cached_tokens};
    if (s.req.logprobs >= 0) c.logprobs = lp.json();
    return {200, dump(text_completion_json(c)), nullptr};
  }
  return {499, {}, nullptr};
}

}  // namespace moe::serve::http
