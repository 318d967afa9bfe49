// The transformers goldens (tests/fixtures/chat_templates/golden, written by
// scripts/chat-template-goldens.py) and how one case is rendered and compared.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/chat/chat_template.h"

namespace moe::test {

struct GoldenCase {
  std::string name;
  chat::ChatRequest request;
  bool raises = false;        // jinja2 raised on this case
  std::string output;         // the prompt, when it did not
  std::string error_type;     // the Python exception type, when it did ("TemplateError": raise_exception)
  std::string error;          // its message
};

struct GoldenTemplate {
  std::string name;    // file name, e.g. "Qwen-Qwen3-0.6B.jinja"
  std::string source;  // the template
  std::vector<GoldenCase> cases;
};

std::filesystem::path chat_template_dir();
chat::SpecialTokens golden_special_tokens();
std::vector<std::string> golden_template_names();
GoldenTemplate load_golden(const std::string& template_name);
jinja::RenderOptions golden_render_options();  // strftime_now sees the goldens' fixed date

// "" when our rendering of the case matches the golden, else what differs (one line).
std::string compare_case(const chat::ChatTemplate& ct, const GoldenCase& c);

}  // namespace moe::test
