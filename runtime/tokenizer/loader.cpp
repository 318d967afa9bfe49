// Builds a TokenizerImpl from tokenizer.json / tokenizer_config.json contents.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

#include "runtime/tokenizer/json_util.h"
#include "runtime/tokenizer/tokenizer_impl.h"

namespace moe::tok {

namespace {

std::unique_ptr<Bpe> make_model(const nlohmann::json& root) {
  auto it = root.find("model");
  if (it == root.end() || it->is_null()) throw std::runtime_error("missing \"model\"");
  if (!it->is_object()) throw std::runtime_error("\"model\" must be a JSON object");
  std::string type;
  if (auto t = it->find("type"); t != it->end() && t->is_string()) {
    type = t->get<std::string>();
  } else if (it->contains("merges")) {
    type = "BPE";
  } else if (auto v = it->find("vocab"); v != it->end() && v->is_array()) {
    type = "Unigram";
  } else {
    type = "(untyped)";
  }
  if (type != "BPE") {
    throw std::runtime_error("unsupported model type '" + type + "' (only BPE is supported)");
  }
  return std::make_unique<Bpe>(*it);
}

// bos_token / eos_token in tokenizer_config.json: a string or an AddedToken object.
std::optional<std::string> config_token(const nlohmann::json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    if (auto c = it->find("content"); c != it->end() && c->is_string()) return c->get<std::string>();
  }
  throw std::runtime_error(std::string("\"") + key + "\" must be a string or a token object");
}

// Deepest JSON nesting accepted. nlohmann's parser recurses once per level, so a hostile file
// nested 100,000 deep would overflow the stack: the bracket depth is checked before parsing.
// kMaxComponentDepth Sequences take about two levels each, well within this.
constexpr size_t kMaxJsonDepth = 512;

nlohmann::json parse_bounded(std::string_view text) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        throw std::runtime_error("JSON nested more than " + std::to_string(kMaxJsonDepth) +
                                 " levels deep (at byte " + std::to_string(i) +
                                 "); the file is corrupt or hostile");
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return nlohmann::json::parse(text.begin(), text.end());
}

}  // namespace

std::shared_ptr<TokenizerImpl> parse_tokenizer(std::string_view text) {
  nlohmann::json root = parse_bounded(text);
  if (!root.is_object()) throw std::runtime_error("top level must be a JSON object");
  auto impl = std::make_shared<TokenizerImpl>();
  impl->model = make_model(root);
  static const nlohmann::json kNull;
  auto get = [&](const char* key) -> const nlohmann::json& {
    auto it = root.find(key);
    return it == root.end() ? kNull : *it;
  };
  impl->normalizer = make_normalizer(get("normalizer"));
  impl->pre_tokenizer = make_pre_tokenizer(get("pre_tokenizer"));
  impl->post_processor = make_post_processor(get("post_processor"));
  impl->decoder = make_decoder(get("decoder"));
  impl->added = AddedVocabulary(parse_added_tokens(get("added_tokens")), *impl->model,
                                 impl->normalizer.get());

  int32_t max_id = impl->model->max_id();
  for (const auto& t : impl->added.tokens()) max_id = std::max(max_id, t.id);
  impl->vocab_size = max_id + 1;
  if (impl->post_processor) impl->post_processor->check_ids(impl->vocab_size);
  if (impl->post_processor) impl->bos = impl->post_processor->leading_special();
  return impl;
}

void apply_config(TokenizerImpl& impl, std::string_view text) {
  nlohmann::json cfg = parse_bounded(text);
  if (!cfg.is_object()) throw std::runtime_error("top level must be a JSON object");
  auto lookup = [&](const std::string& token, const char* key) -> std::optional<int32_t> {
    if (auto id = impl.added.token_to_id(token)) return id;
    if (auto id = impl.model->token_to_id(token)) return id;
    throw std::runtime_error(std::string(key) + " '" + token + "' is not in the vocabulary");
  };
  if (auto bos = config_token(cfg, "bos_token")) impl.bos = lookup(*bos, "bos_token");
  if (auto eos = config_token(cfg, "eos_token")) impl.eos = lookup(*eos, "eos_token");
  if (auto it = cfg.find("chat_template"); it != cfg.end() && !it->is_null()) {
    if (it->is_string()) {
      impl.chat_template = it->get<std::string>();
    } else if (it->is_array()) {
      // [{"name": ..., "template": ...}, ...]: the one named "default", else the first.
      for (const auto& t : *it) {
        if (!t.is_object() || !t.contains("template")) continue;
        if (impl.chat_template.empty() || get_or<std::string>(t, "name", "") == "default") {
          impl.chat_template = get_field<std::string>(t["template"], "template");
        }
      }
    } else {
      throw std::runtime_error("\"chat_template\" must be a string or a list of templates");
    }
  }
}

}  // namespace moe::tok
