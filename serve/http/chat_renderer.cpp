#include "serve/http/chat_renderer.h"

#include <fstream>
#include <memory>
#include <sstream>

#include "serve/chat/chat_template.h"
#include "serve/parsers/output_parser.h"

namespace moe::serve::http {

namespace {

std::string read_template(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("--chat-template " + file + ": cannot open the file");
  std::ostringstream s;
  s << in.rdbuf();
  if (s.str().empty()) throw std::runtime_error("--chat-template " + file + ": the file is empty");
  return s.str();
}

// The model's own template, or none.
std::shared_ptr<const chat::ChatTemplate> model_template(const std::filesystem::path& model, const Tokenizer& tok) {
  if (std::filesystem::is_directory(model)) {
    try {
      return std::make_shared<const chat::ChatTemplate>(chat::ChatTemplate::from_model_dir(model));
    } catch (const jinja::Error&) {
      throw;  // a template that does not parse: say so at startup
    } catch (const std::runtime_error&) {
      return nullptr;  // none in the directory
    }
  }
  if (tok.chat_template().empty()) return nullptr;
  return std::make_shared<const chat::ChatTemplate>(chat::ChatTemplate::from_tokenizer(tok));
}

}  // namespace

std::string tool_parser_names() {
  std::string s;
  for (const std::string& f : output_parser_families()) s += (s.empty() ? "" : ", ") + f;
  return s;
}

ChatRenderer make_chat_renderer(const std::filesystem::path& model, const Tokenizer& tok, const std::string& template_file,
                                const std::string& tool_parser) {
  std::shared_ptr<const chat::ChatTemplate> ct = model_template(model, tok);
  std::string source = tok.chat_template();
  if (!template_file.empty()) {
    source = read_template(template_file);
    try {
      ct = std::make_shared<const chat::ChatTemplate>(source, ct ? ct->special_tokens() : chat::SpecialTokens{});
    } catch (const std::exception& e) {
      throw std::runtime_error("--chat-template " + template_file + ": " + e.what());
    }
  }
  ChatRenderer r;
  if (!tool_parser.empty()) {
    ParserOptions po;
    po.family = tool_parser;
    make_output_parser(po);  // throws for an unknown name, listing the known ones
    r.parser_family = tool_parser;
  } else {
    r.parser_family = detect_parser_family(source);
    // A template that never writes tools (tiny-moe's ChatML) for a model trained on Hermes calls:
    // the vocabulary's <tool_call> token says which syntax comes out.
    if (r.parser_family == "none" && tok.token_to_id("<tool_call>") && tok.token_to_id("</tool_call>"))
      r.parser_family = "hermes";
  }
  if (!ct) return r;
  r.render = [ct](const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                  const nlohmann::ordered_json& kwargs) {
    chat::ChatRequest req;
    req.messages = messages;
    req.tools = tools;
    req.vars = kwargs;
    req.add_generation_prompt = true;
    try {
      return ct->render(req);
    } catch (const jinja::TemplateException& e) {
      throw ApiError(400, "invalid_request_error", e.raised(), "messages", "chat_template_error");
    } catch (const std::invalid_argument& e) {
      throw ApiError(400, "invalid_request_error", e.what(), "messages");
    } catch (const jinja::Error& e) {
      throw ApiError(500, "server_error", std::string("The chat template failed: ") + e.what(), "", "chat_template_error");
    }
  };
  return r;
}

}  // namespace moe::serve::http
