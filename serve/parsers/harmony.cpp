// gpt-oss "harmony": the output is a sequence of messages, each a header then a body,
//   <|channel|>analysis<|message|>...<|end|>                      -> reasoning
//   <|start|>assistant<|channel|>final<|message|>...<|return|>     -> content
//   <|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json<|message|>{..}<|call|>
// (the recipient may also come before <|channel|>, as the template renders past calls). The
// generation prompt ends with "<|start|>assistant", so the first header has no <|start|>.
// <|return|> and <|call|> are usually stop tokens and then absent. Commentary without a
// recipient is a preamble the user sees: content. Built-in recipients (browser, python) are not
// the request's tools, so such messages pass through as content, header and all.
#include <algorithm>

#include "serve/parsers/families.h"
#include "serve/parsers/tool_stream.h"

namespace moe::serve::parsers {
namespace {

constexpr std::string_view kStart = "<|start|>", kEnd = "<|end|>", kMessage = "<|message|>",
                           kChannel = "<|channel|>", kConstrain = "<|constrain|>", kCall = "<|call|>",
                           kReturn = "<|return|>";

bool word_char(char c) { return is_name_char(c) || c == '/'; }

// The word after `key` in a header ("" when absent).
std::string field(std::string_view h, std::string_view key) {
  const size_t at = h.find(key);
  if (at == std::string_view::npos) return {};
  size_t i = at + key.size(), j = i;
  while (j < h.size() && word_char(h[j])) ++j;
  return std::string(h.substr(i, j - i));
}

class Harmony final : public ToolStream {
 public:
  using ToolStream::ToolStream;

 private:
  enum class St { header, body, args_open, args, call_end, between };
  enum class Body { reasoning, content };
  using R = JsonCallReader::R;

  // A header up to and including <|message|>: more, done (len set), or bad (not a header).
  R header(std::string_view r, size_t& len) const {
    const size_t m = r.find(kMessage);
    const bool whole = m != std::string_view::npos;
    const std::string_view h = r.substr(0, whole ? m : r.size());
    std::string_view t = h;
    const Lit role = match_lit(t, "assistant");
    if (role == Lit::more) return whole ? R::failed : R::more;
    if (role == Lit::yes) t.remove_prefix(9);
    bool starts = false, maybe = false;
    for (std::string_view p : {kChannel, std::string_view(" to="), std::string_view("to=")}) {
      const Lit l = match_lit(t, p);
      starts |= l == Lit::yes;
      maybe |= l == Lit::more || t.empty();
    }
    if (!starts) return maybe && !whole ? R::more : R::failed;
    // Too long or multi-line: not a header. (While <|message|> may still be arriving, only
    // what cannot be part of it counts toward the limit.)
    const size_t min_len = whole ? h.size() : h.size() - std::min(h.size(), kMessage.size() - 1);
    if (min_len > kMaxName || h.find('\n') != std::string_view::npos) return R::failed;
    for (size_t i = h.find('<'); i != std::string_view::npos; i = h.find('<', i + 1)) {
      const std::string_view s = h.substr(i);
      bool ok = false;
      for (std::string_view p : {kChannel, kConstrain, kMessage}) {
        const Lit l = match_lit(s, p);
        ok |= (l == Lit::yes && p != kMessage) || (l == Lit::more && !whole);
      }
      if (!ok) return R::failed;
    }
    if (!whole) return R::more;
    len = m + kMessage.size();
    return R::done;
  }

  // Body text up to the next message boundary; true when one was reached (pos_ on it).
  bool scan_body(Emitter& e) {
    const std::string_view r = rest();
    const MarkerHit h = find_marker(r, {kEnd, kCall, kReturn, kStart, kChannel});
    const size_t n = h.full() ? h.pos : h.none() || at_end_ ? r.size() : h.pos;
    if (body_ == Body::reasoning) e.put_reasoning(r.substr(0, n));
    else e.put_content(r.substr(0, n));
    pos_ += n;
    return h.full();
  }

  // The message is over at pos_: <|end|>/<|call|>/<|return|> are consumed, <|start|> and
  // <|channel|> begin the next header.
  void end_message() {
    for (std::string_view m : {kEnd, kCall, kReturn, kStart})
      if (lit(m) == Lit::yes) {
        raw_start_ = m == kStart ? std::string(kStart) : std::string();
        st_ = m == kStart ? St::header : St::between;
        return;
      }
    raw_start_.clear();
    st_ = St::header;  // <|channel|>
  }

  void start_body(Emitter& e, std::string_view raw_header) {
    const std::string h(raw_header.substr(0, raw_header.size() - kMessage.size()));
    const std::string channel = field(h, kChannel), to = field(h, "to=");
    body_ = channel == "analysis" && to.empty() ? Body::reasoning : Body::content;
    st_ = St::body;
    if (to.empty()) return;
    if (opt_.tools_enabled && to.substr(0, 10) == "functions." && to.size() > 10) {
      name_ = to.substr(10);
      raw_header_ = raw_start_ + std::string(raw_header);
      st_ = St::args_open;
      return;
    }
    e.put_content(raw_start_);  // not one of the request's tools: verbatim
    e.put_content(raw_header);
  }

  bool step(Emitter& e) override {
    switch (st_) {
      case St::header: {
        // The model may write <|start|> itself (first message), or start again right away.
        if (const Lit s = match_lit(rest(), kStart); s != Lit::no) {
          if (s == Lit::more && !at_end_) return false;
          if (s == Lit::yes) {
            e.put_content(raw_start_);  // an empty message: its <|start|> was just text
            pos_ += kStart.size();
            raw_start_ = kStart;
            return true;
          }
        }
        size_t len = 0;
        const R r = header(rest(), len);
        if (r == R::more && !at_end_) return false;
        if (r != R::done) {  // plain text, not a header
          e.put_content(raw_start_);
          raw_start_.clear();
          body_ = Body::content;
          // Past a <|channel|> it starts with, so that it is not reread as a header.
          const size_t n = match_lit(rest(), kChannel) == Lit::yes ? kChannel.size() : 0;
          e.put_content(rest().substr(0, n));
          pos_ += n;
          st_ = St::body;
          return true;
        }
        const std::string raw(rest().substr(0, len));
        pos_ += len;
        start_body(e, raw);
        return true;
      }
      case St::body:
        if (!scan_body(e)) return false;
        end_message();
        return true;
      case St::args_open:
        if (!skip_ws() && !at_end_) return false;
        if (pos_ == buf_.size() || rest()[0] != '{') {  // not JSON arguments: all of it is content
          e.put_content(raw_header_);
          body_ = Body::content;
          st_ = St::body;
          return true;
        }
        commit(e, name_);
        args_.reset();
        st_ = St::args;
        return true;
      case St::args: {
        const R r = args_.step(*this, e);
        if (r == R::more && !at_end_) return false;
        if (r != R::done) {
          r == R::failed ? fail(e) : truncated(e);
          body_ = Body::content;
          st_ = St::body;
          return true;
        }
        st_ = St::call_end;
        return true;
      }
      case St::call_end: {
        if (!skip_ws() && !at_end_) return false;
        close_call(e);
        body_ = Body::content;
        st_ = St::body;  // the boundary, or text after the arguments, is read as a body would be
        return true;
      }
      case St::between: {
        if (!skip_ws()) return false;
        const Lit s = match_lit(rest(), kStart), c = match_lit(rest(), kChannel);
        if ((s == Lit::more || c == Lit::more) && !at_end_) return false;
        if (s == Lit::yes) {
          pos_ += kStart.size();
          raw_start_ = kStart;
          st_ = St::header;
        } else if (c == Lit::yes) {
          raw_start_.clear();
          st_ = St::header;
        } else {
          body_ = Body::content;
          st_ = St::body;
        }
        return true;
      }
    }
    return false;
  }

  St st_ = St::header;
  Body body_ = Body::content;
  std::string name_, raw_start_, raw_header_;
  JsonArgsReader args_;
};

}  // namespace

std::unique_ptr<BodyParser> make_harmony(const ParserOptions& o) { return std::make_unique<Harmony>(o); }

}  // namespace moe::serve::parsers
