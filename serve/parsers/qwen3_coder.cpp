// Qwen3-Coder (also Nemotron-3-Nano, Step-3.5): XML parameters whose values are raw text,
//   <tool_call>\n<function=f>\n<parameter=p>\nVALUE\n</parameter>\n</function>\n</tool_call>
// typed by the tool's schema. A bare <function=...> without <tool_call> is accepted too; a
// missing </parameter> ends the value at the next tag.
#include "serve/parsers/families.h"
#include "serve/parsers/xml_args.h"

namespace moe::serve::parsers {
namespace {

constexpr std::string_view kOpen = "<tool_call>", kClose = "</tool_call>", kFunc = "<function=",
                           kFuncEnd = "</function>", kParam = "<parameter=", kParamEnd = "</parameter>";

class Qwen3Coder final : public ToolStream {
 public:
  using ToolStream::ToolStream;

 private:
  enum class St { text, open, fname, params, pname, value, after };

  // The name inside "<function=NAME>" or "<parameter=NAME>"; false while it is incomplete.
  bool tag_name(std::string& out, bool& bad) {
    const std::string_view r = rest();
    const size_t gt = r.find('>');
    const std::string_view s = r.substr(0, gt);
    bad = s.find_first_of("<\n") != std::string_view::npos || s.size() > kMaxName;
    if (bad || gt == std::string_view::npos) return false;
    out.assign(s);
    pos_ += gt + 1;
    bad = !valid_tag_name(out);
    return !bad;
  }

  bool step(Emitter& e) override {
    switch (st_) {
      case St::text: {
        const int k = scan_text(e, {kOpen, kFunc});
        if (k < 0) return false;
        bare_ = k == 1;
        open_call(bare_ ? kFunc.size() : kOpen.size());
        st_ = bare_ ? St::fname : St::open;
        return true;
      }
      case St::open: {
        const Lit l = skip_ws() ? lit(kFunc) : Lit::more;
        if (l == Lit::more && !at_end_) return false;
        if (l != Lit::yes) {
          fail(e);
          st_ = St::text;
          return true;
        }
        st_ = St::fname;
        return true;
      }
      case St::fname: {
        std::string name;
        bool bad = false;
        if (!tag_name(name, bad)) {
          if (!bad && !at_end_) return false;
          fail(e);
          st_ = St::text;
          return true;
        }
        types_.load(opt_.tools, name);
        writer_ = XmlArgsWriter();
        commit(e, name);
        st_ = St::params;
        return true;
      }
      case St::params: {
        if (!skip_ws()) {
          if (!at_end_) return false;
          args(e, writer_.close());  // only the closing tags are missing: the call stands
          close_call(e);
          st_ = St::text;
          return true;
        }
        for (std::string_view m : {kParam, kFuncEnd, kClose}) {
          const Lit l = lit(m);
          if (l == Lit::more) {
            if (!at_end_) return false;
            pos_ = buf_.size();  // a cut closing tag: the call stands
            args(e, writer_.close());
            close_call(e);
            st_ = St::text;
            return true;
          }
          if (l != Lit::yes) continue;
          if (m == kParam) {
            st_ = St::pname;
          } else {
            args(e, writer_.close());
            st_ = m == kFuncEnd && !bare_ ? St::after : St::text;
            if (st_ == St::text) close_call(e);
          }
          return true;
        }
        args(e, writer_.close());  // something else follows: the call ends with what it has
        close_call(e);
        st_ = St::text;
        return true;
      }
      case St::pname: {
        bool bad = false;
        if (!tag_name(param_, bad)) {
          if (!bad && !at_end_) return false;
          if (bad) {  // not a parameter after all: end the call here, the rest is content
            args(e, writer_.close());
            close_call(e);
          } else {
            truncated(e);
          }
          st_ = St::text;
          return true;
        }
        const bool str = types_.is_string(param_);
        if (str) args(e, writer_.open_param(param_, true));
        value_.begin(str, true);
        st_ = St::value;
        return true;
      }
      case St::value: {
        const int k = value_.step(*this, e, {kParamEnd, kParam, kFuncEnd, kClose});
        if (k < 0) {
          if (!at_end_) return false;
          truncated(e);
          st_ = St::text;
          return true;
        }
        if (types_.is_string(param_)) args(e, "\"");
        else args(e, writer_.open_param(param_, false) + types_.convert(param_, value_.text()));
        if (k == 0) pos_ += kParamEnd.size();
        st_ = St::params;
        return true;
      }
      case St::after: {
        if (close_at(e, kClose) == Lit::more) return false;
        st_ = St::text;
        return true;
      }
    }
    return false;
  }

  St st_ = St::text;
  bool bare_ = false;
  std::string param_;
  ParamTypes types_;
  XmlArgsWriter writer_;
  XmlValueReader value_;
};

}  // namespace

std::unique_ptr<BodyParser> make_qwen3_coder(const ParserOptions& o) { return std::make_unique<Qwen3Coder>(o); }

}  // namespace moe::serve::parsers
