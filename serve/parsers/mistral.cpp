// Mistral. Two syntaxes, both after the [TOOL_CALLS] control token:
//   older (Mistral-Nemo, 7B v0.3):     [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]
//   newer (Small-3.2, Devstral, Ministral-3): [TOOL_CALLS]f[ARGS]{...}[TOOL_CALLS]g[ARGS]{...}
// Small-3.2's template also renders f[CALL_ID]abc123def[ARGS]{...}; a generated [CALL_ID] becomes
// the call's id. Ids made here are 9 alphanumerics: those templates reject any other id.
#include "serve/parsers/families.h"
#include "serve/parsers/tool_stream.h"

namespace moe::serve::parsers {
namespace {

constexpr std::string_view kCalls = "[TOOL_CALLS]", kArgs = "[ARGS]", kCallId = "[CALL_ID]";

class Mistral final : public ToolStream {
 public:
  using ToolStream::ToolStream;

 private:
  enum class St { text, form, name, call_id, args, list_call, list_next, list_item, object };
  using R = JsonCallReader::R;

  // A reader said failed or ran out: undo (before commit) or stop the call (after).
  bool give_up(Emitter& e, R r) {
    r == R::failed ? fail(e) : truncated(e);
    st_ = St::text;
    return true;
  }

  bool step(Emitter& e) override {
    switch (st_) {
      case St::text:
        if (scan_text(e, {kCalls}) < 0) return false;
        open_call(kCalls.size());
        st_ = St::form;
        return true;
      case St::form: {
        if (!skip_ws()) {
          if (!at_end_) return false;
          return give_up(e, R::more);
        }
        const char c = rest()[0];
        if (c == '[') {
          ++pos_;
          reader_.reset();
          st_ = St::list_call;
        } else if (c == '{') {
          reader_.reset();
          st_ = St::object;
        } else {
          st_ = St::name;
        }
        return true;
      }
      case St::name: {  // NAME[ARGS] or NAME[CALL_ID]ID[ARGS]
        const std::string_view r = rest();
        size_t i = 0;
        while (i < r.size() && is_name_char(r[i])) ++i;
        Lit l = i == r.size() ? Lit::more : Lit::no;
        bool with_id = false;
        if (i < r.size() && r[i] == '[') {
          l = match_lit(r.substr(i), kArgs);
          if (l == Lit::no) with_id = (l = match_lit(r.substr(i), kCallId)) == Lit::yes;
        }
        if (l == Lit::more && !at_end_ && i <= kMaxName) return false;
        if (l != Lit::yes || i == 0 || i > kMaxName) return give_up(e, R::failed);
        name_.assign(r.substr(0, i));
        id_.clear();
        pos_ += i + (with_id ? kCallId.size() : kArgs.size());
        st_ = with_id ? St::call_id : St::args;
        if (!with_id) commit(e, name_);
        args_.reset();
        return true;
      }
      case St::call_id: {
        const std::string_view r = rest();
        size_t i = 0;
        while (i < r.size() && is_name_char(r[i])) ++i;
        const Lit l = i == r.size() ? Lit::more : match_lit(r.substr(i), kArgs);
        if (l == Lit::more && !at_end_ && i <= kMaxName) return false;
        if (l != Lit::yes || i == 0 || i > kMaxName) return give_up(e, R::failed);
        id_.assign(r.substr(0, i));
        pos_ += i + kArgs.size();
        commit(e, name_, id_);
        st_ = St::args;
        return true;
      }
      case St::args: {
        const R r = args_.step(*this, e);
        if (r == R::more && !at_end_) return false;
        if (r != R::done) return give_up(e, r);
        close_call(e);
        st_ = St::text;  // the next call starts with its own [TOOL_CALLS]
        return true;
      }
      case St::object:
      case St::list_call: {
        const R r = reader_.step(*this, e);
        if (r == R::more && !at_end_) return false;
        if (r != R::done) return give_up(e, r);
        close_call(e);
        st_ = st_ == St::object ? St::text : St::list_next;
        return true;
      }
      case St::list_next: {  // ", {...}" or "]"
        if (!skip_ws()) return false;
        if (rest()[0] == ',') {
          ++pos_;
          st_ = St::list_item;
          return true;
        }
        if (rest()[0] == ']') ++pos_;
        st_ = St::text;
        return true;
      }
      case St::list_item:
        if (!skip_ws()) {
          if (!at_end_) return false;
          st_ = St::text;
          return true;
        }
        open_call(0);  // on failure its text is content from here
        reader_.reset();
        st_ = St::list_call;
        return true;
    }
    return false;
  }

  St st_ = St::text;
  std::string name_, id_;
  JsonCallReader reader_;
  JsonArgsReader args_;
};

}  // namespace

std::unique_ptr<BodyParser> make_mistral(const ParserOptions& o) { return std::make_unique<Mistral>(o); }

}  // namespace moe::serve::parsers
