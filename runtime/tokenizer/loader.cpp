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

}  // namespace

std::shared_ptr<TokenizerImpl> parse_tokenizer(std::string_view text) {
  nlohmann::json root = nlohmann::json::parse(text.begin(), text.end());
  if (!root.is_object()) throw std::runtime_error("top level must be a JSON object");
  auto impl = std::make_shared<TokenizerImpl>();
  impl->model = make_model(root);
  auto get = [&](const char* key) {
    auto it = root.find(key);
    return it == root.end() ? nlohmann::json() : *it;
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
  if (impl->post_processor) impl->bos = impl->post_processor->leading_special();
  return impl;
}

void apply_config(TokenizerImpl& impl, std::string_view text) {
  nlohmann::json cfg = nlohmann::json::parse(text.begin(), text.end());
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
          impl.chat_template = t["template"].get<std::string>();
        }
      }
    } else {
      throw std::runtime_error("\"chat_template\" must be a string or a list of templates");
    }
  }
}

}  // namespace moe::tok
