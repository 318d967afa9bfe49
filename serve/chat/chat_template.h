// A model's chat template rendered over OpenAI-style messages exactly as transformers'
// apply_chat_template(messages, tools=..., add_generation_prompt=..., tokenize=False, **vars)
// renders it (transformers 5.x): the same variables, the same message normalization.
//
//   auto ct = moe::chat::ChatTemplate::from_model_dir("models/tiny-moe");
//   std::string prompt = ct.render({.messages = msgs, .add_generation_prompt = true});
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/jinja/template.h"

namespace moe {
class Tokenizer;
}

namespace moe::chat {

// The tokenizer's named special tokens as transformers passes them to the template
// (special_tokens_map: bos_token, eos_token, unk_token, sep_token, pad_token, cls_token,
// mask_token; only those that are set).
using SpecialTokens = std::vector<std::pair<std::string, std::string>>;

struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;      // null: none given (the template sees tools = None)
  nlohmann::ordered_json documents;  // null: none given
  bool add_generation_prompt = false;
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();  // extra template variables (enable_thinking, ...)
};

class ChatTemplate {
 public:
  // One template source (e.g. --chat-template FILE). Throws jinja::Error when it does not parse.
  explicit ChatTemplate(std::string source, SpecialTokens tokens = {});

  // tokenizer_config.json contents: its chat_template (a string, or HF's list of {name, template}),
  // unless `jinja_file` (a chat_template.jinja's contents) is given, which takes priority as in
  // transformers; special tokens from the config. Throws std::runtime_error naming what is missing.
  static ChatTemplate from_tokenizer_config(std::string_view config_json, std::string_view jinja_file = {},
                                            const std::string& origin = "tokenizer_config.json");
  // A Hugging Face model directory: chat_template.jinja, additional_chat_templates/*.jinja,
  // tokenizer_config.json (and special_tokens_map.json for tokens the config lacks).
  static ChatTemplate from_model_dir(const std::filesystem::path& dir);
  // A loaded tokenizer (e.g. a .moepack's): its chat template with its BOS/EOS tokens. Prefer
  // from_tokenizer_config when the config itself is at hand: it also knows pad/unk and named templates.
  static ChatTemplate from_tokenizer(const Tokenizer& tok);

  // The prompt text. Throws jinja::TemplateException when the template raises, jinja::Error
  // on any other template failure, std::invalid_argument on malformed messages.
  std::string render(const ChatRequest& req, const jinja::RenderOptions& options = {}) const;

  // The variables render() hands to the template (for tests and debugging).
  nlohmann::ordered_json context(const ChatRequest& req) const;
  const SpecialTokens& special_tokens() const { return tokens_; }
  // The template used for a request: "tool_use" when tools are given and one exists, else "default".
  const jinja::Template& pick(bool with_tools) const;

 private:
  ChatTemplate() = default;
  std::map<std::string, std::shared_ptr<const jinja::Template>> templates_;  // by name; a single one is "default"
  SpecialTokens tokens_;
};

// Messages as transformers prepares them before rendering: keys whose value is null dropped,
// reasoning aliased (reasoning_content / thinking / reasoning: all three names set).
nlohmann::ordered_json normalize_messages(const nlohmann::ordered_json& messages);

// JSON from a user (a file, a request body), parsed with its nesting bounded so that a hostile
// document cannot overflow the stack; throws std::invalid_argument naming `what` on bad JSON.
nlohmann::ordered_json parse_json(std::string_view text, const std::string& what);

}  // namespace moe::chat
