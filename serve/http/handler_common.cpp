#include "serve/http/handler_common.h"

#include <fmt/format.h>

namespace moe::serve::http {

int64_t resolve_max_tokens(const ServeContext& cx, int64_t prompt_tokens, const std::optional<int64_t>& asked) {
  const int64_t ctx = cx.scheduler.context();
  int64_t room = ctx - prompt_tokens;
  const auto too_long = [&](int64_t want) {
    return ApiError(400, "invalid_request_error",
                    fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens "
                                "({} in the messages, {} in the completion). Please reduce the length of the "
                                "messages or completion.",
                                ctx, prompt_tokens + want, prompt_tokens, want),
                    "messages", "context_length_exceeded");
  };
  if (asked) {
    if (prompt_tokens + *asked > ctx) throw too_long(*asked);
    return cx.max_tokens_cap > 0 ? std::min(*asked, cx.max_tokens_cap) : *asked;
  }
  if (room < 1) throw too_long(1);
  return cx.max_tokens_cap > 0 ? std::min(room, cx.max_tokens_cap) : room;
}

std::shared_ptr<RequestHandle> submit(ServeContext& cx, GenerationRequest r) {
  try {
    return cx.scheduler.submit(std::move(r));
  } catch (const SchedulerError& e) {
    switch (e.kind) {
      case SchedulerError::Kind::queue_full:
        throw ApiError(429, "rate_limit_error", std::string("The server is busy: ") + e.what() + " Retry later.", "",
                       "queue_full");
      case SchedulerError::Kind::too_long:
        throw ApiError(400, "invalid_request_error", e.what(), "messages", "context_length_exceeded");
      case SchedulerError::Kind::draining:
        throw ApiError(503, "service_unavailable", "The server is shutting down.", "", "draining");
      case SchedulerError::Kind::invalid: throw ApiError(400, "invalid_request_error", e.what());
    }
    throw;
  }
}

ApiError generation_error(const GenerationEvent& ev) {
  if (ev.finish == FinishReason::cancelled)
    return ApiError(503, "service_unavailable", "The request was cancelled (the server is shutting down).");
  return ApiError(500, "server_error", "Generation failed: " + (ev.error.empty() ? std::string("unknown error") : ev.error));
}

TokenText token_text_fn(const Tokenizer& tok) {
  return [tok](int32_t id) {
    const int32_t one[1] = {id};
    return tok.decode(one, false);
  };
}

std::optional<GenerationEvent> EventPump::next(const std::function<bool()>& gone) {
  if (finished) return std::nullopt;
  while (true) {
    std::optional<GenerationEvent> ev = h->next(std::chrono::milliseconds(20));
    const Clock::time_point now = Clock::now();
    // The socket is polled every 20 ms whether tokens flow or not (a poll costs a microsecond).
    if (!ev || now - last_check >= std::chrono::milliseconds(20)) {
      last_check = now;
      if (gone && gone()) {
        h->cancel();
        cx.metrics.disconnect();
        log.finish = "disconnected";
        finished = true;
        return std::nullopt;
      }
    }
    if (!ev) continue;
    if (ev->first || log.ttft_ms < 0) {
      if (log.ttft_ms < 0) {
        log.ttft_ms = std::chrono::duration<double, std::milli>(now - start).count();
        cx.metrics.time_to_first_token(log.ttft_ms / 1000.0);
      }
    } else if (last != Clock::time_point{}) {
      cx.metrics.inter_token_latency(std::chrono::duration<double>(now - last).count());
    }
    last = now;
    if (ev->finish != FinishReason::none) on_finish(*ev);
    return ev;
  }
}

void EventPump::on_finish(const GenerationEvent& ev) {
  finished = true;
  log.prompt_tokens = ev.prompt_tokens;
  log.cached_tokens = ev.cached_tokens;
  log.completion_tokens = ev.completion_tokens;
  log.finish = finish_reason_name(ev.finish);
  cx.metrics.finish_reason(log.finish);
  cx.metrics.request_duration(std::chrono::duration<double>(Clock::now() - start).count());
}

bool ends_in_reasoning(std::string_view prompt) {
  const size_t open = prompt.rfind("<think>");
  if (open == std::string_view::npos) return false;
  const size_t close = prompt.rfind("</think>");
  if (close != std::string_view::npos && close > open) return false;
  for (const char c : prompt.substr(open + 7))
    if (c != '\n' && c != ' ' && c != '\r' && c != '\t') return false;
  return true;
}

bool EventPump::send(ChunkSink& sink, const std::string& bytes) {
  if (sink.write(bytes)) return true;
  if (!finished) {
    h->cancel();
    finished = true;
    cx.metrics.disconnect();
    log.finish = "disconnected";
  }
  return false;
}

}  // namespace moe::serve::http
