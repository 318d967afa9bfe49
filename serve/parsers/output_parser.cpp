// The factory: a family's body parser behind the reasoning splitter, plus what every family
// shares (whole UTF-8 characters only, default ids), detection from a chat template, and merging.
#include "serve/parsers/output_parser.h"

#include <algorithm>
#include <optional>
#include <random>
#include <stdexcept>

#include "serve/parsers/families.h"
#include "serve/parsers/reasoning.h"

namespace moe::serve {
namespace {

using namespace parsers;

const std::vector<std::string> kFamilies = {"none",   "hermes",  "qwen3_coder", "mistral",
                                            "deepseek_v31", "glm45", "kimi_k2", "harmony"};

std::string random_alnum(size_t n) {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, sizeof kChars - 2);
  std::string s(n, ' ');
  for (char& c : s) c = kChars[pick(rng)];
  return s;
}

// Everything is content: "none", or a family with tools disabled.
class PlainBody final : public BodyParser {
 public:
  void feed(std::string_view text, Emitter& e) override { e.put_content(text); }
  void finish(Emitter& e) override { e.content.flush(e.d.content); }
};

// Bytes of a character cut at the end of `s` (0 when it ends on a boundary).
size_t incomplete_utf8_tail(std::string_view s) {
  for (size_t back = 1; back <= 4 && back <= s.size(); ++back) {
    const auto c = static_cast<unsigned char>(s[s.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

class Parser final : public OutputParser {
 public:
  explicit Parser(ParserOptions o) : opt_(std::move(o)) {
    const std::string& f = opt_.family;
    if (!opt_.make_id && f == "mistral") opt_.make_id = [] { return random_alnum(9); };  // its templates insist
    if (!opt_.make_id) opt_.make_id = [] { return "call_" + random_alnum(24); };
    const bool tools = opt_.tools_enabled && f != "none";
    if (!tools && f != "harmony") body_ = std::make_unique<PlainBody>();
    else if (f == "hermes") body_ = make_hermes(opt_);
    else if (f == "qwen3_coder") body_ = make_qwen3_coder(opt_);
    else if (f == "mistral") body_ = make_mistral(opt_);
    else if (f == "deepseek_v31") body_ = make_deepseek_v31(opt_);
    else if (f == "glm45") body_ = make_glm45(opt_);
    else if (f == "kimi_k2") body_ = make_kimi_k2(opt_);
    else if (f == "harmony") body_ = make_harmony(opt_);
    if (f == "harmony") {  // reasoning is a channel; bodies are verbatim
      e_.reasoning.set_hold_newlines(false);
      return;
    }
    e_.content.set_hold_newlines(tools);  // newlines before a call are its separator
    if (f == "mistral") split_.emplace("[THINK]", "[/THINK]", opt_.starts_in_reasoning, *body_);
    else split_.emplace("<think>", "</think>", opt_.starts_in_reasoning, *body_);
  }

  OutputDelta feed(std::string_view text) override {
    // Models write whole characters, but a caller may cut one; markers are ASCII or whole
    // characters, so holding a cut character back keeps every delta valid UTF-8.
    carry_.append(text);
    const size_t cut = incomplete_utf8_tail(carry_);
    const std::string_view whole = std::string_view(carry_).substr(0, carry_.size() - cut);
    if (split_) split_->feed(whole, e_);
    else body_->feed(whole, e_);
    carry_.erase(0, whole.size());
    return e_.take();
  }

  OutputDelta finish() override {
    if (!carry_.empty()) {
      if (split_) split_->feed(carry_, e_);
      else body_->feed(carry_, e_);
      carry_.clear();
    }
    if (split_) split_->finish(e_);
    else body_->finish(e_);
    return e_.take();
  }

 private:
  ParserOptions opt_;
  std::unique_ptr<BodyParser> body_;
  std::optional<ReasoningSplitter> split_;
  Emitter e_;
  std::string carry_;
};

bool has(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }

}  // namespace

std::vector<std::string> output_parser_families() { return kFamilies; }

std::unique_ptr<OutputParser> make_output_parser(const ParserOptions& o) {
  if (std::find(kFamilies.begin(), kFamilies.end(), o.family) == kFamilies.end()) {
    std::string known;
    for (const std::string& f : kFamilies) known += (known.empty() ? "" : ", ") + f;
    throw std::invalid_argument("unknown tool-call parser family '" + o.family + "' (known: " + known + ")");
  }
  return std::make_unique<Parser>(o);
}

std::string detect_parser_family(std::string_view t) {
  // Most specific first: several of these also contain "<tool_call>" or "<think>".
  if (has(t, "<|channel|>")) return "harmony";
  if (has(t, "<|tool_calls_section_begin|>")) return "kimi_k2";
  if (has(t, "<｜tool▁calls▁begin｜>") || has(t, "<｜tool▁call▁begin｜>")) return "deepseek_v31";
  if (has(t, "<arg_key>")) return "glm45";
  // Qwen3-Coder's <function=...> inside <tool_call>; Seed-OSS (<seed:tool_call>) and
  // Functionary (<function=f>{json}</function>) use other wrappers.
  if (has(t, "<tool_call>") && has(t, "<function=")) return "qwen3_coder";
  if (has(t, "[TOOL_CALLS]")) return "mistral";
  // Apriel writes a JSON list inside <tool_calls>, though its prompt mentions <tool_call>.
  if (has(t, "<tool_call>") && !has(t, "<tool_calls>")) return "hermes";
  return "none";
}

bool prompt_ends_in_reasoning(std::string_view prompt, std::string_view family) {
  if (family == "harmony") return false;
  while (!prompt.empty() && is_space(prompt.back())) prompt.remove_suffix(1);
  const std::string_view open = family == "mistral" ? "[THINK]" : "<think>";
  return prompt.size() >= open.size() && prompt.substr(prompt.size() - open.size()) == open;
}

void merge_delta(ParsedMessage& m, const OutputDelta& d) {
  m.content += d.content;
  m.reasoning += d.reasoning;
  for (const ToolCallDelta& t : d.tool_calls) {
    if (t.index < 0) continue;
    if (static_cast<size_t>(t.index) >= m.tool_calls.size()) m.tool_calls.resize(t.index + 1);
    ToolCall& c = m.tool_calls[t.index];
    if (!t.id.empty()) c.id = t.id;
    if (!t.name.empty()) c.name = t.name;
    c.arguments += t.arguments;
  }
}

ParsedMessage parse_output(const ParserOptions& o, std::string_view text) {
  auto p = make_output_parser(o);
  ParsedMessage m;
  merge_delta(m, p->feed(text));
  merge_delta(m, p->finish());
  return m;
}

}  // namespace moe::serve
