#include "runtime/tokenizer/post_processor.h"

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

#include "runtime/tokenizer/json_util.h"

namespace moe::tok {

namespace {

// The ids placed before and after the sequence.
class Surround final : public PostProcessor {
 public:
  Surround(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids) const override {
    std::vector<int32_t> out;
    out.reserve(before_.size() + ids.size() + after_.size());
    out.insert(out.end(), before_.begin(), before_.end());
    out.insert(out.end(), ids.begin(), ids.end());
    out.insert(out.end(), after_.begin(), after_.end());
    return out;
  }
  std::optional<int32_t> leading_special() const override {
    if (before_.empty()) return std::nullopt;
    return before_.front();
  }
  void check_ids(int32_t vocab_size) const override {
    for (const auto* v : {&before_, &after_}) {
      for (int32_t id : *v) {
        if (id >= vocab_size) {
          throw std::runtime_error("post_processor: special token id " + std::to_string(id) +
                                   " is outside the vocabulary (" + std::to_string(vocab_size) +
                                   " tokens); fix the id in tokenizer.json");
        }
      }
    }
  }

 private:
  std::vector<int32_t> before_, after_;
};

class Identity final : public PostProcessor {
 public:
  std::vector<int32_t> process(std::vector<int32_t> ids) const override { return ids; }
};

class SequenceProcessor final : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> items)
      : items_(std::move(items)) {}
  std::vector<int32_t> process(std::vector<int32_t> ids) const override {
    for (const auto& p : items_) ids = p->process(std::move(ids));
    return ids;
  }
  std::optional<int32_t> leading_special() const override {
    for (auto it = items_.rbegin(); it != items_.rend(); ++it) {
      if (auto id = (*it)->leading_special()) return id;
    }
    return std::nullopt;
  }
  void check_ids(int32_t vocab_size) const override {
    for (const auto& p : items_) p->check_ids(vocab_size);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> items_;
};

// A token id: a non-negative integer that fits int32 (range against the vocabulary: check_ids).
int32_t token_id(const nlohmann::json& v, const std::string& where) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX) {
    throw std::runtime_error(where + ": token id " + v.dump().substr(0, 40) +
                             " is not a non-negative 32-bit integer");
  }
  return static_cast<int32_t>(v.get<int64_t>());
}

std::unique_ptr<PostProcessor> make_template(const nlohmann::json& j) {
  const std::string where = "TemplateProcessing post_processor";
  const auto& single = required_array(j, "single", where);
  static const nlohmann::json kNoTokens = nlohmann::json::object();
  auto st_it = j.find("special_tokens");
  const nlohmann::json& special_tokens = st_it == j.end() || st_it->is_null() ? kNoTokens : *st_it;
  if (!special_tokens.is_object()) throw std::runtime_error(where + ": \"special_tokens\" must be an object");
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (const auto& piece : single) {
    if (auto it = piece.find("Sequence"); it != piece.end()) {
      std::string id = get_or<std::string>(*it, "id", "A");
      if (id != "A") throw std::runtime_error(where + ": single template refers to sequence '" + id + "'");
      seen_sequence = true;
    } else if (auto st = piece.find("SpecialToken"); st != piece.end()) {
      std::string name = get_required<std::string>(*st, "id", where);
      auto tok = special_tokens.find(name);
      if (tok == special_tokens.end()) {
        throw std::runtime_error(where + ": special token '" + name + "' is not in special_tokens");
      }
      auto& dst = seen_sequence ? after : before;
      for (const auto& id : required_array(*tok, "ids", where)) dst.push_back(token_id(id, where));
    } else {
      throw std::runtime_error(where + ": unknown template piece " + piece.dump().substr(0, 200));
    }
  }
  return std::make_unique<Surround>(std::move(before), std::move(after));
}

// "cls": ["<s>", 0] style entries of Bert/Roberta processors.
int32_t token_pair_id(const nlohmann::json& j, const char* key, const std::string& where) {
  const nlohmann::json& v = required_field(j, key, where);
  if (!v.is_array() || v.size() != 2) {
    throw std::runtime_error(where + ": \"" + key + "\" must be [token, id]");
  }
  return token_id(v[1], where);
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, int depth) {
  if (j.is_null()) return nullptr;
  check_component_depth(depth, "post_processor");
  std::string type = component_type(j, "post_processor");
  if (type == "TemplateProcessing") return make_template(j);
  if (type == "ByteLevel") return std::make_unique<Identity>();
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    std::string where = type + " post_processor";
    return std::make_unique<Surround>(std::vector<int32_t>{token_pair_id(j, "cls", where)},
                                      std::vector<int32_t>{token_pair_id(j, "sep", where)});
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> items;
    for (const auto& p : required_array(j, "processors", "Sequence post_processor")) {
      if (auto x = make_post_processor(p, depth + 1)) items.push_back(std::move(x));
    }
    return std::make_unique<SequenceProcessor>(std::move(items));
  }
  throw std::runtime_error("unsupported post_processor type '" + type +
                           "' (supported: TemplateProcessing, ByteLevel, RobertaProcessing, "
                           "BertProcessing, Sequence)");
}

}  // namespace moe::tok
