// moe chat-template: a chat template rendered over messages, printed exactly (no newline added):
// what transformers' apply_chat_template(messages, tools=..., add_generation_prompt=...,
// tokenize=False, **vars) returns for the same model.
#include <cstdio>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "serve/chat/chat_template.h"
#include "session/session.h"
#include "storage/pack_file.h"
#include "tools/commands.h"
#include "tools/model_files.h"

namespace moe::cli {

namespace {

// The model's template: a directory's files, or a .moepack's embedded tokenizer_config.json.
chat::ChatTemplate model_template(const std::string& model) {
  std::error_code ec;
  if (std::filesystem::is_directory(model, ec)) return chat::ChatTemplate::from_model_dir(model);
  if (!std::filesystem::exists(model, ec)) throw std::invalid_argument(fmt::format("--model {}: no such file or directory", model));
  const std::string cfg = PackFile(model).embedded_file("tokenizer_config.json");
  if (cfg.empty()) return chat::ChatTemplate::from_tokenizer(open_tokenizer(model));
  return chat::ChatTemplate::from_tokenizer_config(cfg, {}, model + " (embedded tokenizer_config.json)");
}

// --var name=value: the value as JSON when it parses (true, 3, "x", [..]), else the text itself.
void add_var(nlohmann::ordered_json& vars, const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0)
    throw std::invalid_argument(fmt::format("--var {}: expected name=value, e.g. enable_thinking=false", spec));
  const std::string name = spec.substr(0, eq), text = spec.substr(eq + 1);
  try {
    vars[name] = chat::parse_json(text, "--var " + name);
  } catch (const std::invalid_argument&) {
    vars[name] = text;
  }
}

}  // namespace

Runner add_chat_template(CLI::App& app) {
  struct Opts {
    std::string model, chat_template, messages, tools;
    bool add_generation_prompt = false;
    std::vector<std::string> vars;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* c = app.add_subcommand("chat-template", "Print a chat rendered with the model's chat template (as transformers' apply_chat_template)");
  c->add_option("--model,-m", o->model, "Model directory or .moepack: its chat template and special tokens");
  c->add_option("--chat-template", o->chat_template, "A Jinja chat template file to use instead of the model's");
  c->add_option("--messages", o->messages, "JSON file: an array of chat messages (or an object with \"messages\" and \"tools\")")->required();
  c->add_option("--tools", o->tools, "JSON file: an array of tools (JSON-schema functions)");
  c->add_flag("--add-generation-prompt", o->add_generation_prompt, "End with the header of an assistant turn");
  c->add_option("--var", o->vars, "name=value: an extra template variable (JSON when it parses, else a string); repeatable");
  return [o] {
    if (o->model.empty() && o->chat_template.empty()) throw std::invalid_argument("give --model DIR|PACK or --chat-template FILE");
    std::unique_ptr<chat::ChatTemplate> ct;
    if (!o->chat_template.empty()) {
      const std::string src = read_text_file(o->chat_template, "--chat-template");
      chat::SpecialTokens tokens = o->model.empty() ? chat::SpecialTokens{} : model_template(o->model).special_tokens();
      try {
        ct = std::make_unique<chat::ChatTemplate>(src, std::move(tokens));
      } catch (const jinja::Error& e) {
        throw std::invalid_argument(fmt::format("--chat-template {}: {}", o->chat_template, e.what()));
      }
    } else {
      ct = std::make_unique<chat::ChatTemplate>(model_template(o->model));
    }
    chat::ChatRequest req;
    const auto msgs = chat::parse_json(read_text_file(o->messages, "--messages"), "--messages " + o->messages);
    if (msgs.is_object() && msgs.contains("messages")) {
      req.messages = msgs["messages"];
      if (msgs.contains("tools")) req.tools = msgs["tools"];
    } else {
      req.messages = msgs;
    }
    if (!o->tools.empty()) req.tools = chat::parse_json(read_text_file(o->tools, "--tools"), "--tools " + o->tools);
    req.add_generation_prompt = o->add_generation_prompt;
    for (const std::string& v : o->vars) add_var(req.vars, v);
    std::string text;
    try {
      text = ct->render(req);
    } catch (const jinja::TemplateException& e) {
      throw std::runtime_error("the chat template refused these messages: " + e.raised());
    } catch (const jinja::Error& e) {
      throw std::runtime_error(std::string("chat template: ") + e.what());
    }
    std::fwrite(text.data(), 1, text.size(), stdout);  // exactly the prompt: no newline, NULs kept
    return 0;
  };
}

}  // namespace moe::cli
