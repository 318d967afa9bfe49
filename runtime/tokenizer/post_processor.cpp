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

 private:
  std::vector<std::unique_ptr<PostProcessor>> items_;
};

std::unique_ptr<PostProcessor> make_template(const nlohmann::json& j) {
  const std::string where = "TemplateProcessing post_processor";
  const auto& single = get_required<nlohmann::json>(j, "single", where);
  auto special_tokens = get_or<nlohmann::json>(j, "special_tokens", nlohmann::json::object());
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
      auto ids = get_required<std::vector<int32_t>>(*tok, "ids", where);
      auto& dst = seen_sequence ? after : before;
      dst.insert(dst.end(), ids.begin(), ids.end());
    } else {
      throw std::runtime_error(where + ": unknown template piece " + piece.dump());
    }
  }
  return std::make_unique<Surround>(std::move(before), std::move(after));
}

// "cls": ["<s>", 0] style entries of Bert/Roberta processors.
int32_t token_pair_id(const nlohmann::json& j, const char* key, const std::string& where) {
  auto v = get_required<nlohmann::json>(j, key, where);
  if (!v.is_array() || v.size() != 2 || !v[1].is_number_integer()) {
    throw std::runtime_error(where + ": \"" + key + "\" must be [token, id]");
  }
  return v[1].get<int32_t>();
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j) {
  if (j.is_null()) return nullptr;
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
    for (const auto& p : get_required<nlohmann::json>(j, "processors", "Sequence post_processor")) {
      if (auto x = make_post_processor(p)) items.push_back(std::move(x));
    }
    return std::make_unique<SequenceProcessor>(std::move(items));
  }
  throw std::runtime_error("unsupported post_processor type '" + type +
                           "' (supported: TemplateProcessing, ByteLevel, RobertaProcessing, "
                           "BertProcessing, Sequence)");
}

}  // namespace moe::tok
