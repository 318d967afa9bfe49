// moe::jinja: a small Jinja interpreter of our own that renders Hugging Face chat templates
// byte-identical to transformers' apply_chat_template, i.e. jinja2's ImmutableSandboxedEnvironment
// with trim_blocks, lstrip_blocks, the loopcontrols extension and HF's {% generation %} tag, plus
// HF's globals raise_exception and strftime_now and its tojson filter (json.dumps).
//
//   moe::jinja::Template t(source);              // parses; throws moe::jinja::Error
//   std::string s = t.render({{"messages", ...}, {"add_generation_prompt", true}});
//
// Values follow Python: {{ 1.0 }} prints 1.0, None/True print as in Python, a dict prints as
// {'a': 1}. A context key that is absent is undefined (prints as ""); a JSON null is None.
// Anything unsupported is a one-line Error naming the construct and the template line.
// A Template is immutable after construction: render() may run concurrently from many threads.
#pragma once
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "serve/jinja/error.h"

namespace moe::jinja {

struct Stmt;

// Bounds on one render, so that a hostile template (users pass --chat-template files; the
// server renders per request) fails with an Error instead of hanging or exhausting memory.
struct RenderOptions {
  std::function<std::tm()> now;             // strftime_now's clock (local time); empty: the system clock
  size_t max_output_bytes = size_t(32) << 20;  // the rendered text, and any one string built on the way
  size_t max_items = size_t(1) << 22;          // elements of one list the template builds
  uint64_t max_steps = 20'000'000;             // work: expressions, loop iterations, bytes built / 64 (~ seconds)
  int max_depth = 600;                         // nested evaluation (macro recursion included)
};

class Template {
 public:
  explicit Template(std::string source);  // parses; throws Error
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // `context` must be a JSON object: its keys become the template's variables.
  std::string render(const nlohmann::ordered_json& context, const RenderOptions& options = {}) const;
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::shared_ptr<const std::vector<std::unique_ptr<Stmt>>> body_;
};

}  // namespace moe::jinja
