// GLM-4.5 / 4.6 (and 5.x, which drops the newlines): the name, then key/value pairs as raw text,
//   <tool_call>NAME\n<arg_key>K</arg_key>\n<arg_value>V</arg_value>\n</tool_call>
// Values are written raw when strings and as JSON otherwise (the template's tojson), so the
// tool's schema decides which.
#include "serve/parsers/families.h"
#include "serve/parsers/xml_args.h"

namespace moe::serve::parsers {
namespace {

constexpr std::string_view kOpen = "<tool_call>", kClose = "</tool_call>", kKey = "<arg_key>",
                           kKeyEnd = "</arg_key>", kValue = "<arg_value>", kValueEnd = "</arg_value>";

class Glm45 final : public ToolStream {
 public:
  using ToolStream::ToolStream;

 private:
  enum class St { text, name, args, key, value_open, value };

  void end_args(Emitter& e) {
    args(e, writer_.close());
    close_call(e);
    st_ = St::text;
  }

  // The function name runs to the first tag, maybe after a newline; anything else is prose.
  bool step_name(Emitter& e) {
    const std::string_view r = rest();
    size_t i = 0;
    while (i < r.size() && is_name_char(r[i])) ++i;
    const size_t name_end = i;
    while (i < r.size() && is_space(r[i])) ++i;
    Lit l = i == r.size() ? Lit::more : Lit::no;
    if (i < r.size() && r[i] == '<') {
      l = match_lit(r.substr(i), kKey);
      if (l == Lit::no) l = match_lit(r.substr(i), kClose);
    }
    if (l == Lit::more && !at_end_ && name_end <= kMaxName) return false;
    if (l != Lit::yes || name_end == 0 || name_end > kMaxName) {
      fail(e);
      st_ = St::text;
      return true;
    }
    const std::string name(r.substr(0, name_end));
    pos_ += name_end;
    types_.load(opt_.tools, name);
    writer_ = XmlArgsWriter();
    commit(e, name);
    st_ = St::args;
    return true;
  }

  bool step(Emitter& e) override {
    switch (st_) {
      case St::text:
        if (scan_text(e, {kOpen}) < 0) return false;
        open_call(kOpen.size());
        st_ = St::name;
        return true;
      case St::name:
        return step_name(e);
      case St::args: {
        if (!skip_ws()) {
          if (!at_end_) return false;
          end_args(e);  // only </tool_call> is missing
          return true;
        }
        Lit l = lit(kKey);
        if (l == Lit::yes) {
          st_ = St::key;
          return true;
        }
        const Lit c = lit(kClose);
        if ((l == Lit::more || c == Lit::more) && c != Lit::yes && !at_end_) return false;
        if (c == Lit::more) pos_ = buf_.size();
        end_args(e);  // closed, cut, or followed by something else (then content)
        return true;
      }
      case St::key: {
        const size_t end = rest().find(kKeyEnd);
        // No key is longer than kMaxName: then the call ends and the rest is content. (Decided
        // the same however the text arrives: a later "</arg_key>" would be past the limit too.)
        if (end == std::string_view::npos ? rest().size() >= kMaxName + kKeyEnd.size() : end > kMaxName) {
          end_args(e);
          return true;
        }
        if (end == std::string_view::npos) {
          if (!at_end_) return false;
          truncated(e);
          st_ = St::text;
          return true;
        }
        std::string_view key = rest().substr(0, end);
        while (!key.empty() && is_space(key.back())) key.remove_suffix(1);
        while (!key.empty() && is_space(key.front())) key.remove_prefix(1);
        key_.assign(key);
        pos_ += end + kKeyEnd.size();
        st_ = St::value_open;
        return true;
      }
      case St::value_open: {
        const Lit l = skip_ws() ? lit(kValue) : Lit::more;
        if (l == Lit::more && !at_end_) return false;
        if (l == Lit::more) {
          truncated(e);
          st_ = St::text;
          return true;
        }
        if (l == Lit::no) {  // a key without a value: end the call, the rest is content
          end_args(e);
          return true;
        }
        const bool str = types_.is_string(key_);
        if (str) args(e, writer_.open_param(key_, true));
        value_.begin(str, false);
        st_ = St::value;
        return true;
      }
      case St::value: {
        const int k = value_.step(*this, e, {kValueEnd, kKey, kClose});
        if (k < 0) {
          if (!at_end_) return false;
          truncated(e);
          st_ = St::text;
          return true;
        }
        if (types_.is_string(key_)) args(e, "\"");
        else args(e, writer_.open_param(key_, false) + types_.convert(key_, value_.text()));
        if (k == 0) pos_ += kValueEnd.size();
        st_ = St::args;
        return true;
      }
    }
    return false;
  }

  St st_ = St::text;
  std::string key_;
  ParamTypes types_;
  XmlArgsWriter writer_;
  XmlValueReader value_;
};

}  // namespace

std::unique_ptr<BodyParser> make_glm45(const ParserOptions& o) { return std::make_unique<Glm45>(o); }

}  // namespace moe::serve::parsers
