// Splits "<think>...</think>" (or Mistral's "[THINK]...[/THINK]") at the start of an output into
// reasoning, then hands the rest to the family's body parser. The opening marker is optional when
// the prompt already ended inside the thinking block (DeepSeek-V3.1 and R1 put "<think>" in the
// generation prompt). Like the templates that read these messages back, the newlines just inside
// the block and right after it are dropped.
#pragma once
#include <string>

#include "serve/parsers/stream_text.h"

namespace moe::serve::parsers {

class ReasoningSplitter {
 public:
  ReasoningSplitter(std::string_view open, std::string_view close, bool starts_inside, BodyParser& body)
      : open_(open), close_(close), st_(starts_inside ? St::start_inside : St::start), body_(body) {}
  void feed(std::string_view text, Emitter& e);
  void finish(Emitter& e);

 private:
  enum class St { start, start_inside, inside, body };
  void run(Emitter& e);
  std::string_view open_, close_;
  St st_;
  BodyParser& body_;
  std::string buf_;
};

}  // namespace moe::serve::parsers
