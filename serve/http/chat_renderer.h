// The server's chat template: the model's (an HF directory's files, or a pack's embedded
// tokenizer config) or --chat-template FILE, rendered by serve/chat; and the output parser
// family (--tool-parser, else detected from the template's source; "hermes" when the template
// says nothing but the vocabulary has <tool_call> and </tool_call> tokens).
#pragma once
#include <filesystem>
#include <string>

#include "runtime/tokenizer/tokenizer.h"
#include "serve/http/handler_common.h"

namespace moe::serve::http {

// Throws std::runtime_error / std::invalid_argument for an unreadable or broken template file
// or an unknown parser name. A model without any template gives an empty render (chat
// requests then get a 400 that says to pass --chat-template).
ChatRenderer make_chat_renderer(const std::filesystem::path& model, const Tokenizer& tok,
                                const std::string& template_file, const std::string& tool_parser);

// "hermes, qwen3_coder, ..." for --help.
std::string tool_parser_names();

}  // namespace moe::serve::http
