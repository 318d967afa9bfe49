// The body parser of each family (what follows the reasoning block); output_parser.cpp picks one.
#pragma once
#include <memory>

#include "serve/parsers/stream_text.h"

namespace moe::serve::parsers {

std::unique_ptr<BodyParser> make_hermes(const ParserOptions& o);
std::unique_ptr<BodyParser> make_qwen3_coder(const ParserOptions& o);
std::unique_ptr<BodyParser> make_mistral(const ParserOptions& o);
std::unique_ptr<BodyParser> make_deepseek_v31(const ParserOptions& o);
std::unique_ptr<BodyParser> make_glm45(const ParserOptions& o);
std::unique_ptr<BodyParser> make_kimi_k2(const ParserOptions& o);
// gpt-oss writes reasoning as a channel, so harmony parses the whole output, not a body.
std::unique_ptr<BodyParser> make_harmony(const ParserOptions& o);

}  // namespace moe::serve::parsers
