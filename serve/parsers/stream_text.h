// The pieces every streaming parser shares: finding markers in text that may end mid-marker, the
// content/reasoning channels (which hold back newlines that may turn out to be separators), and
// the delta being built for one feed() call.
#pragma once
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "serve/parsers/output_parser.h"

namespace moe::serve::parsers {

using Markers = std::initializer_list<std::string_view>;

// The first place in `s` where one of the markers starts. `which` is its index in the list, or -1
// when only a tail of `s` matches the start of a marker (then the text from `pos` must be held
// back until more arrives). pos == npos: no marker starts anywhere in `s`.
struct MarkerHit {
  size_t pos = std::string_view::npos;
  int which = -1;
  bool none() const { return pos == std::string_view::npos; }
  bool full() const { return which >= 0; }
  bool partial() const { return !none() && which < 0; }
};
MarkerHit find_marker(std::string_view s, Markers markers);

// Is `s` (non-empty) the start of `marker`, or does it start with it? yes: s starts with marker;
// more: s is a proper prefix of marker; no: neither.
enum class Lit { yes, no, more };
Lit match_lit(std::string_view s, std::string_view marker);

// One output channel (content or reasoning). Runs of '\n' at the end of what was written are held
// back when hold_newlines is set: they are emitted when more text follows and dropped when markup
// follows (Qwen3 writes "\n</think>"; templates put "\n" before "<tool_call>").
class TextChannel {
 public:
  explicit TextChannel(bool hold_newlines = false) : hold_(hold_newlines) {}
  void set_hold_newlines(bool on) { hold_ = on; }
  void write(std::string_view s, std::string& out);
  void flush(std::string& out);
  void drop_held() { held_.clear(); }
  // The next text written loses these leading characters (e.g. the newlines after "</think>").
  void strip_leading(std::string_view chars) { strip_ = chars; }
  // Markup (a tool call) just ended: whitespace after it is held, and is content only if text
  // follows (dropped before another call or at the end).
  void mark_boundary() { boundary_ = true; }
  // End of output: what is held goes out, unless it only separated markup from the end.
  void finish(std::string& out);

 private:
  bool hold_;
  bool boundary_ = false;
  std::string held_;
  std::string_view strip_;
};

// What one feed() or finish() produces.
struct Emitter {
  OutputDelta d;
  TextChannel content, reasoning{true};
  void put_content(std::string_view s) { content.write(s, d.content); }
  void put_reasoning(std::string_view s) { reasoning.write(s, d.reasoning); }
  void call_begin(int index, std::string id, std::string name);
  void call_args(int index, std::string_view fragment);
  OutputDelta take() { return std::exchange(d, OutputDelta{}); }
};

// What follows the reasoning: content and tool calls in a family's syntax.
class BodyParser {
 public:
  virtual ~BodyParser() = default;
  virtual void feed(std::string_view text, Emitter& e) = 0;
  virtual void finish(Emitter& e) = 0;
};

bool is_space(char c);
// Characters a function name may hold (OpenAI allows [A-Za-z0-9_-]; models also use . and :).
bool is_name_char(char c);
// Longer names, ids and keys mean the text is not a call. Every limit is applied so that it
// decides the same however the text is cut (a limit on what is buffered would not).
inline constexpr size_t kMaxName = 256;

}  // namespace moe::serve::parsers
