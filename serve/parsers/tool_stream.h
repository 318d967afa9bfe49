// The base of every family that writes tool calls inline with its content: a buffer of undecided
// text, content scanning that holds back only a possible marker, and a call's life cycle.
//
// A call is committed (its first delta, with id and name, is sent) once its name is known and its
// syntax has held so far. Before that, a call that turns out not to be one (bad JSON, unknown
// syntax, the output ending) is passed through as content, byte for byte. After it, the call keeps
// what it was sent: on invalid text the rest is scanned as content again; when the output ends
// mid-arguments (max_tokens) the call stays truncated, as OpenAI's own streams do.
#pragma once
#include <string>

#include "serve/parsers/json_scanner.h"
#include "serve/parsers/stream_text.h"

namespace moe::serve::parsers {

class ToolStream : public BodyParser {
 public:
  explicit ToolStream(const ParserOptions& o) : opt_(o) {}
  void feed(std::string_view text, Emitter& e) final;
  void finish(Emitter& e) final;

  // For the family code and the readers below; positions index buf_.
  std::string buf_;
  size_t pos_ = 0;
  bool at_end_ = false;  // finish(): nothing more will arrive
  std::string_view rest() const { return std::string_view(buf_).substr(pos_); }
  bool skip_ws();                         // false when nothing but whitespace is buffered
  Lit lit(std::string_view marker);       // at pos_; moves past it on yes
  // Emits content up to the first of `markers` and returns its index (pos_ on it), or -1 once all
  // that can be decided is emitted (a possible partial marker is held back unless at the end).
  int scan_text(Emitter& e, Markers markers);

  void open_call(size_t marker_len);  // a call's start marker is at pos_; pos_ moves past it
  void commit(Emitter& e, std::string name, std::string id = {});
  void args(Emitter& e, std::string_view fragment) { e.call_args(index_, fragment); }
  void close_call(Emitter& e);  // complete; whitespace after it is a separator, not content
  // A call's end marker, after whitespace. Lit::more: not decided yet, nothing done. Otherwise the
  // call is closed and the result says whether the marker was there (missing at the end of the
  // output, a stop string cut it: the call stands, and what is left is dropped).
  Lit close_at(Emitter& e, std::string_view end_marker);
  void fail(Emitter& e);        // not a call (or, committed, invalid from pos_ on): rescan as text
  void truncated(Emitter& e);   // the output ended inside the call
  bool committed() const { return committed_; }
  const ParserOptions& options() const { return opt_; }
  // After a call of a section (DeepSeek, Kimi): whitespace, then the next call's start marker
  // (next_call: the call is opened), the section's end marker or anything else (text: the end
  // marker is consumed), or not yet decidable (wait).
  enum class AfterCall { wait, next_call, text };
  AfterCall after_call(std::string_view call_begin, std::string_view section_end);

 protected:
  virtual bool step(Emitter& e) = 0;  // false when nothing more can be decided now
  const ParserOptions& opt_;

 private:
  bool in_call_ = false, committed_ = false;
  size_t call_start_ = 0, marker_len_ = 0;
  int index_ = -1;
};

// {"name": "...", "arguments": {...}} at pos_, keys in any order (others skipped), as used by
// Hermes/Qwen inside <tool_call> and by Mistral's JSON list. The call commits as soon as the name
// is known and the arguments object has begun, whose raw text then streams; when the arguments
// come before the name they are held and sent at the closing brace.
class JsonCallReader {
 public:
  enum class R { more, done, failed };
  void reset() { *this = JsonCallReader(); }
  R step(ToolStream& t, Emitter& e);

 private:
  enum class St { open, key, colon, value, args, skip, comma_or_close };
  R close(ToolStream& t, Emitter& e);
  St st_ = St::open;
  bool first_key_ = true, have_name_ = false, have_args_ = false;
  std::string key_, name_, early_args_;
  JsonScanner scan_;
};

// A JSON string token at t.pos_ ("..." with escapes), decoded; pos_ moves past it on done.
JsonCallReader::R read_json_string(ToolStream& t, std::string& out);

// Reads a raw JSON object at pos_ as arguments: leading whitespace, then '{' ... '}', streamed to
// the committed call. Returns done, more, or failed (pos_ on the offending byte).
class JsonArgsReader {
 public:
  void reset() { scan_.reset(); }
  JsonCallReader::R step(ToolStream& t, Emitter& e);

 private:
  JsonScanner scan_;
};

}  // namespace moe::serve::parsers
