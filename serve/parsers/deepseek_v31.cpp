// DeepSeek-V3.1 (its full-width bars and ▁ are single tokens):
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{args}<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
// The older V3 / R1 form, which the R1-Distill templates render, is read too:
//   <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{args}\n```<｜tool▁call▁end｜>
#include "serve/parsers/families.h"
#include "serve/parsers/tool_stream.h"

namespace moe::serve::parsers {
namespace {

constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>", kCallsEnd = "<｜tool▁calls▁end｜>",
                           kCallBegin = "<｜tool▁call▁begin｜>", kCallEnd = "<｜tool▁call▁end｜>",
                           kSep = "<｜tool▁sep｜>", kFence = "\n```json", kFenceEnd = "```";

class DeepSeekV31 final : public ToolStream {
 public:
  using ToolStream::ToolStream;

 private:
  enum class St { text, section, name, after_sep, v3_name, args_open, args, call_end, between };
  using R = JsonCallReader::R;

  bool give_up(Emitter& e, bool failed) {
    failed ? fail(e) : truncated(e);
    st_ = St::text;
    return true;
  }

  // NAME followed by `end`: the name, or "" while undecided (`bad` when it cannot be one).
  bool read_name(std::string_view end, bool& bad) {
    const std::string_view r = rest();
    size_t i = 0;
    while (i < r.size() && is_name_char(r[i])) ++i;
    const Lit l = i > kMaxName ? Lit::no : i == r.size() ? Lit::more : match_lit(r.substr(i), end);
    bad = l == Lit::no || (l == Lit::yes && i == 0);
    if (l != Lit::yes || bad) return false;
    name_.assign(r.substr(0, i));
    pos_ += i + end.size();
    return true;
  }

  bool step(Emitter& e) override {
    bool bad = false;
    switch (st_) {
      case St::text: {
        const int k = scan_text(e, {kCallsBegin, kCallBegin});
        if (k < 0) return false;
        open_call(k == 0 ? kCallsBegin.size() : kCallBegin.size());
        st_ = k == 0 ? St::section : St::name;
        return true;
      }
      case St::section: {
        const Lit l = skip_ws() ? lit(kCallBegin) : Lit::more;
        if (l == Lit::more && !at_end_) return false;
        if (l != Lit::yes) return give_up(e, true);
        st_ = St::name;
        return true;
      }
      case St::name:
        if (!read_name(kSep, bad)) return (bad || at_end_) ? give_up(e, true) : false;
        st_ = St::after_sep;
        return true;
      case St::after_sep:
        if (!skip_ws()) return at_end_ ? give_up(e, true) : false;
        if (rest()[0] == '{') {
          v3_ = false;
          st_ = St::args_open;
        } else if (name_ == "function") {
          st_ = St::v3_name;
        } else {
          return give_up(e, true);
        }
        return true;
      case St::v3_name:
        if (!read_name(kFence, bad)) return (bad || at_end_) ? give_up(e, true) : false;
        v3_ = true;
        st_ = St::args_open;
        return true;
      case St::args_open:
        if (!skip_ws()) return at_end_ ? give_up(e, true) : false;
        if (rest()[0] != '{') return give_up(e, true);
        commit(e, name_);
        args_.reset();
        st_ = St::args;
        return true;
      case St::args: {
        const R r = args_.step(*this, e);
        if (r == R::more && !at_end_) return false;
        if (r != R::done) return give_up(e, r == R::failed);
        st_ = St::call_end;
        return true;
      }
      case St::call_end: {  // [```] <｜tool▁call▁end｜>; missing at the end, the call stands
        Lit l = skip_ws() ? Lit::no : Lit::more;
        if (v3_ && l == Lit::no && (l = lit(kFenceEnd)) == Lit::yes) l = skip_ws() ? Lit::no : Lit::more;
        if (l == Lit::no) l = lit(kCallEnd);
        if (l == Lit::more && !at_end_) return false;
        if (l == Lit::more) pos_ = buf_.size();
        close_call(e);
        st_ = l == Lit::yes ? St::between : St::text;
        return true;
      }
      case St::between: {
        const AfterCall a = after_call(kCallBegin, kCallsEnd);
        if (a == AfterCall::wait) return false;
        st_ = a == AfterCall::next_call ? St::name : St::text;
        return true;
      }
    }
    return false;
  }

  St st_ = St::text;
  bool v3_ = false;
  std::string name_;
  JsonArgsReader args_;
};

}  // namespace

std::unique_ptr<BodyParser> make_deepseek_v31(const ParserOptions& o) {
  return std::make_unique<DeepSeekV31>(o);
}

}  // namespace moe::serve::parsers
