// Kimi-K2: calls in a section, each with the id Kimi itself uses, "functions.NAME:IDX",
//   <|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{args}
//   <|tool_call_end|>...<|tool_calls_section_end|>
// The id is kept as the call id: the template renders tool results against it.
#include "serve/parsers/families.h"
#include "serve/parsers/tool_stream.h"

namespace moe::serve::parsers {
namespace {

constexpr std::string_view kSectionBegin = "<|tool_calls_section_begin|>",
                           kSectionEnd = "<|tool_calls_section_end|>", kCallBegin = "<|tool_call_begin|>",
                           kArgBegin = "<|tool_call_argument_begin|>", kCallEnd = "<|tool_call_end|>";

// "functions.get_weather:0" -> "get_weather"
std::string name_of(std::string_view id) {
  if (id.substr(0, 10) == "functions.") id.remove_prefix(10);
  const size_t colon = id.rfind(':');
  if (colon != std::string_view::npos &&
      id.find_first_not_of("0123456789", colon + 1) == std::string_view::npos)
    id = id.substr(0, colon);
  return std::string(id);
}

class KimiK2 final : public ToolStream {
 public:
  using ToolStream::ToolStream;

 private:
  enum class St { text, section, id, args_open, args, call_end, between };
  using R = JsonCallReader::R;

  bool give_up(Emitter& e, bool failed) {
    failed ? fail(e) : truncated(e);
    st_ = St::text;
    return true;
  }

  bool step(Emitter& e) override {
    switch (st_) {
      case St::text: {
        const int k = scan_text(e, {kSectionBegin, kCallBegin});
        if (k < 0) return false;
        open_call(k == 0 ? kSectionBegin.size() : kCallBegin.size());
        st_ = k == 0 ? St::section : St::id;
        return true;
      }
      case St::section: {
        const Lit l = skip_ws() ? lit(kCallBegin) : Lit::more;
        if (l == Lit::more && !at_end_) return false;
        if (l != Lit::yes) return give_up(e, true);
        st_ = St::id;
        return true;
      }
      case St::id: {
        skip_ws();
        const std::string_view r = rest();
        size_t i = 0;
        while (i < r.size() && is_name_char(r[i])) ++i;
        const Lit l = i > kMaxName ? Lit::no : i == r.size() ? Lit::more : match_lit(r.substr(i), kArgBegin);
        if (l == Lit::more && !at_end_) return false;
        if (l != Lit::yes || name_of(r.substr(0, i)).empty()) return give_up(e, true);
        id_.assign(r.substr(0, i));
        pos_ += i + kArgBegin.size();
        st_ = St::args_open;
        return true;
      }
      case St::args_open:
        if (!skip_ws()) return at_end_ ? give_up(e, true) : false;
        if (rest()[0] != '{') return give_up(e, true);
        commit(e, name_of(id_), id_);
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
      case St::call_end: {  // missing at the end, the call stands
        const Lit l = close_at(e, kCallEnd);
        if (l == Lit::more) return false;
        st_ = l == Lit::yes ? St::between : St::text;
        return true;
      }
      case St::between: {
        const AfterCall a = after_call(kCallBegin, kSectionEnd);
        if (a == AfterCall::wait) return false;
        st_ = a == AfterCall::next_call ? St::id : St::text;
        return true;
      }
    }
    return false;
  }

  St st_ = St::text;
  std::string id_;
  JsonArgsReader args_;
};

}  // namespace

std::unique_ptr<BodyParser> make_kimi_k2(const ParserOptions& o) { return std::make_unique<KimiK2>(o); }

}  // namespace moe::serve::parsers
