// Hermes / Qwen2.5 / Qwen3 / QwQ: each call is a JSON object on its own lines,
//   <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
// one block per call, separated by newlines (Qwen3's template renders them so).
#include "serve/parsers/families.h"
#include "serve/parsers/tool_stream.h"

namespace moe::serve::parsers {
namespace {

constexpr std::string_view kOpen = "<tool_call>", kClose = "</tool_call>";

class Hermes final : public ToolStream {
 public:
  using ToolStream::ToolStream;

 private:
  enum class St { text, call, after };
  using R = JsonCallReader::R;

  bool step(Emitter& e) override {
    switch (st_) {
      case St::text:
        if (scan_text(e, {kOpen}) < 0) return false;
        open_call(kOpen.size());
        reader_.reset();
        st_ = St::call;
        return true;
      case St::call: {
        const R r = reader_.step(*this, e);
        if (r == R::more && !at_end_) return false;
        if (r == R::done) {
          st_ = St::after;
          return true;
        }
        r == R::failed ? fail(e) : truncated(e);
        st_ = St::text;
        return true;
      }
      case St::after: {
        // "\n</tool_call>"; when it is missing the call still stands (a stop string cut it).
        if (close_at(e, kClose) == Lit::more) return false;
        st_ = St::text;
        return true;
      }
    }
    return false;
  }

  St st_ = St::text;
  JsonCallReader reader_;
};

}  // namespace

std::unique_ptr<BodyParser> make_hermes(const ParserOptions& o) { return std::make_unique<Hermes>(o); }

}  // namespace moe::serve::parsers
