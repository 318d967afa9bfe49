#include "serve/chat/chat_template.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "runtime/tokenizer/tokenizer.h"

namespace moe::chat {

namespace {

using json = nlohmann::ordered_json;

// transformers' SPECIAL_TOKENS_ATTRIBUTES, in its order.
constexpr const char* kSpecialTokenNames[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                              "pad_token", "cls_token", "mask_token"};
constexpr size_t kMaxJsonDepth = 512;

// A special token in a config: a string or an AddedToken object {"content": ...}.
std::optional<std::string> token_text(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object())
    if (auto c = it->find("content"); c != it->end() && c->is_string()) return c->get<std::string>();
  return std::nullopt;
}

SpecialTokens tokens_of(const json& cfg, const json& fallback = json::object()) {
  SpecialTokens t;
  for (const char* name : kSpecialTokenNames) {
    std::optional<std::string> v = token_text(cfg, name);
    if (!v && fallback.is_object()) v = token_text(fallback, name);
    if (v) t.emplace_back(name, *v);
  }
  return t;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error(p.string() + ": cannot read the file");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::shared_ptr<const jinja::Template> compile(std::string source, const std::string& origin) {
  try {
    return std::make_shared<const jinja::Template>(std::move(source));
  } catch (const jinja::Error& e) {
    throw jinja::Error(0, origin + ": " + e.what());  // what() already names the line
  }
}

}  // namespace

json parse_json(std::string_view text, const std::string& what) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw std::invalid_argument(what + ": JSON nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    std::string msg = e.what();
    if (auto p = msg.find("] "); p != std::string::npos) msg = msg.substr(p + 2);  // drop nlohmann's "[json.exception...]"
    throw std::invalid_argument(what + ": invalid JSON: " + msg);
  }
}

json normalize_messages(const json& messages) {
  if (!messages.is_array()) throw std::invalid_argument("messages must be a JSON array of message objects");
  if (messages.empty()) throw std::invalid_argument("cannot apply the chat template to an empty conversation");
  json out = json::array();
  for (const json& m : messages) {
    if (!m.is_object()) throw std::invalid_argument("chat messages must be JSON objects, got: " + m.dump());
    json kept = json::object();
    for (const auto& [k, v] : m.items())
      if (!v.is_null()) kept[k] = v;
    // transformers: {"thinking": r, **message, "reasoning_content": r} for the first of these set.
    const json* reasoning = nullptr;
    for (const char* key : {"reasoning_content", "thinking", "reasoning"})
      if (auto it = kept.find(key); it != kept.end()) {
        reasoning = &*it;
        break;
      }
    if (reasoning) {
      json aliased = json::object();
      aliased["thinking"] = *reasoning;
      for (const auto& [k, v] : kept.items()) aliased[k] = v;
      aliased["reasoning_content"] = *reasoning;
      kept = std::move(aliased);
    }
    out.push_back(std::move(kept));
  }
  return out;
}

ChatTemplate::ChatTemplate(std::string source, SpecialTokens tokens) : tokens_(std::move(tokens)) {
  templates_["default"] = compile(std::move(source), "chat template");
}

ChatTemplate ChatTemplate::from_tokenizer_config(std::string_view config_json, std::string_view jinja_file,
                                                 const std::string& origin) {
  ChatTemplate ct;
  const json cfg = config_json.empty() ? json::object() : parse_json(config_json, origin);
  if (!cfg.is_object()) throw std::runtime_error(origin + ": expected a JSON object");
  ct.tokens_ = tokens_of(cfg);
  if (!jinja_file.empty()) {
    ct.templates_["default"] = compile(std::string(jinja_file), "chat_template.jinja");
    return ct;
  }
  auto it = cfg.find("chat_template");
  if (it == cfg.end() || it->is_null())
    throw std::runtime_error(origin + " has no chat_template (and there is no chat_template.jinja); pass --chat-template FILE");
  if (it->is_string()) {
    ct.templates_["default"] = compile(it->get<std::string>(), origin + " chat_template");
  } else if (it->is_array()) {
    for (const json& t : *it) {
      if (!t.is_object() || !t.contains("name") || !t.contains("template") || !t["name"].is_string() || !t["template"].is_string())
        throw std::runtime_error(origin + ": chat_template list entries must be {\"name\": ..., \"template\": ...}");
      const std::string name = t["name"].get<std::string>();
      ct.templates_[name] = compile(t["template"].get<std::string>(), origin + " chat_template '" + name + "'");
    }
  } else {
    throw std::runtime_error(origin + ": chat_template must be a string or a list of {name, template}");
  }
  if (ct.templates_.empty()) throw std::runtime_error(origin + ": chat_template is an empty list");
  return ct;
}

ChatTemplate ChatTemplate::from_model_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) throw std::runtime_error(dir.string() + ": not a model directory");
  const auto cfg_path = dir / "tokenizer_config.json";
  const std::string cfg = std::filesystem::exists(cfg_path, ec) ? read_file(cfg_path) : std::string();
  const auto jinja_path = dir / "chat_template.jinja";
  const std::string jinja = std::filesystem::exists(jinja_path, ec) ? read_file(jinja_path) : std::string();
  // additional_chat_templates/NAME.jinja: named templates; with chat_template.jinja they replace the config's.
  std::map<std::string, std::string> extra;
  const auto extra_dir = dir / "additional_chat_templates";
  if (std::filesystem::is_directory(extra_dir, ec))
    for (const auto& e : std::filesystem::directory_iterator(extra_dir, ec))
      if (e.path().extension() == ".jinja") extra[e.path().stem().string()] = read_file(e.path());
  if (cfg.empty() && jinja.empty() && extra.empty())
    throw std::runtime_error(dir.string() + ": no tokenizer_config.json or chat_template.jinja; pass --chat-template FILE");
  ChatTemplate ct;
  if (!extra.empty() || !jinja.empty()) {
    const json c = cfg.empty() ? json::object() : parse_json(cfg, cfg_path.string());
    ct.tokens_ = tokens_of(c.is_object() ? c : json::object());
    if (!jinja.empty()) ct.templates_["default"] = compile(jinja, jinja_path.string());
    for (auto& [name, src] : extra) ct.templates_[name] = compile(src, (extra_dir / (name + ".jinja")).string());
  } else {
    ct = from_tokenizer_config(cfg, {}, cfg_path.string());
  }
  // Older checkpoints keep the tokens in special_tokens_map.json.
  const auto stm = dir / "special_tokens_map.json";
  if (std::filesystem::exists(stm, ec)) {
    const json c = cfg.empty() ? json::object() : parse_json(cfg, cfg_path.string());
    ct.tokens_ = tokens_of(c.is_object() ? c : json::object(), parse_json(read_file(stm), stm.string()));
  }
  return ct;
}

ChatTemplate ChatTemplate::from_tokenizer(const Tokenizer& tok) {
  const std::string src = tok.chat_template();
  if (src.empty()) throw std::runtime_error("the tokenizer has no chat template; pass --chat-template FILE");
  SpecialTokens t;
  if (auto b = tok.bos_id()) t.emplace_back("bos_token", tok.id_to_token(*b));
  if (auto e = tok.eos_id()) t.emplace_back("eos_token", tok.id_to_token(*e));
  return ChatTemplate(src, std::move(t));
}

const jinja::Template& ChatTemplate::pick(bool with_tools) const {
  if (with_tools)
    if (auto it = templates_.find("tool_use"); it != templates_.end()) return *it->second;
  if (auto it = templates_.find("default"); it != templates_.end()) return *it->second;
  std::string names;
  for (const auto& [n, t] : templates_) names += (names.empty() ? "" : ", ") + n;
  throw std::runtime_error("the model has several chat templates (" + names + ") and none is named 'default'");
}

json ChatTemplate::context(const ChatRequest& req) const {
  json ctx = json::object();
  for (const auto& [name, text] : tokens_) ctx[name] = text;
  if (!req.vars.is_null() && !req.vars.is_object()) throw std::invalid_argument("template variables must be a JSON object");
  if (req.vars.is_object())
    for (const auto& [k, v] : req.vars.items()) {
      if (k == "messages" || k == "tools" || k == "documents" || k == "add_generation_prompt")
        throw std::invalid_argument("the variable '" + k + "' is set by the chat request itself");
      ctx[k] = v;  // extra variables override the special tokens, as in transformers
    }
  if (!req.tools.is_null() && !req.tools.is_array()) throw std::invalid_argument("tools must be a JSON array");
  if (!req.documents.is_null() && !req.documents.is_array()) throw std::invalid_argument("documents must be a JSON array");
  if (req.documents.is_array())
    for (const json& d : req.documents)
      if (!d.is_object()) throw std::invalid_argument("documents must be a list of objects with 'title' and 'text' keys");
  ctx["messages"] = normalize_messages(req.messages);
  ctx["tools"] = req.tools;
  ctx["documents"] = req.documents;
  ctx["add_generation_prompt"] = req.add_generation_prompt;
  return ctx;
}

std::string ChatTemplate::render(const ChatRequest& req, const jinja::RenderOptions& options) const {
  return pick(!req.tools.is_null()).render(context(req), options);
}

}  // namespace moe::chat
