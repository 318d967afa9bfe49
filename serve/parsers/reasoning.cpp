#include "serve/parsers/reasoning.h"

namespace moe::serve::parsers {

void ReasoningSplitter::feed(std::string_view text, Emitter& e) {
  if (st_ == St::body) return body_.feed(text, e);
  buf_.append(text);
  run(e);
}

void ReasoningSplitter::run(Emitter& e) {
  if (st_ == St::start || st_ == St::start_inside) {
    // Whitespace, then the opening marker or not (GLM writes "\n<think>").
    const size_t ws = buf_.find_first_not_of(" \t\r\n");
    if (ws == std::string::npos) return;
    const Lit m = match_lit(std::string_view(buf_).substr(ws), open_);
    if (m == Lit::more) return;
    if (m == Lit::yes) {
      buf_.erase(0, ws + open_.size());
      st_ = St::inside;
    } else if (st_ == St::start_inside) {
      st_ = St::inside;
    } else {
      st_ = St::body;
      body_.feed(buf_, e);
      buf_.clear();
      return;
    }
    e.reasoning.strip_leading("\r\n");
  }
  if (st_ != St::inside) return;
  const MarkerHit hit = find_marker(buf_, {close_});
  if (hit.none()) {
    e.put_reasoning(buf_);
    buf_.clear();
    return;
  }
  e.put_reasoning(std::string_view(buf_).substr(0, hit.pos));
  if (hit.partial()) {
    buf_.erase(0, hit.pos);
    return;
  }
  e.reasoning.drop_held();
  e.content.strip_leading("\r\n");
  st_ = St::body;
  const std::string rest = buf_.substr(hit.pos + close_.size());
  buf_.clear();
  if (!rest.empty()) body_.feed(rest, e);
}

void ReasoningSplitter::finish(Emitter& e) {
  if (st_ == St::inside || st_ == St::start_inside) {  // unclosed: all of it was reasoning
    e.put_reasoning(buf_);
    e.reasoning.flush(e.d.reasoning);
  } else if (st_ != St::body && !buf_.empty()) {
    body_.feed(buf_, e);
  }
  buf_.clear();
  body_.finish(e);
}

}  // namespace moe::serve::parsers
