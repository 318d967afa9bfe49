#include "runtime/tokenizer/normalizer.h"

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <vector>

#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/json_util.h"
#include "runtime/tokenizer/pattern_json.h"
#include "runtime/tokenizer/unicode.h"

namespace moe::tok {

namespace {

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm f) : form_(f) {}
  void normalize(std::string& s, bool&) const override { s = normalize_unicode(s, form_); }

 private:
  NormalForm form_;
};

class Lowercase final : public Normalizer {
 public:
  void normalize(std::string& s, bool&) const override { s = to_lower(s); }
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string p) : prepend_(std::move(p)) {}
  void normalize(std::string& s, bool&) const override {
    if (!s.empty()) s = prepend_ + s;
  }

 private:
  std::string prepend_;
};

class Replace final : public Normalizer {
 public:
  Replace(Pattern p, std::string content) : pattern_(std::move(p)), content_(std::move(content)) {}
  void normalize(std::string& s, bool& at_origin) const override {
    if (content_.empty()) {
      auto m = pattern_.find_all(s);
      if (!m.empty() && m.front().start == 0 && m.front().end > 0) at_origin = false;
    }
    s = pattern_.replace_all(s, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& s, bool& at_origin) const override {
    size_t begin = 0, end = s.size();
    if (left_) {
      size_t i = 0;
      while (i < s.size()) {
        size_t j = i;
        if (!is_whitespace(next_code_point(s, j))) break;
        i = j;
      }
      begin = i;
    }
    if (right_) {
      while (end > begin) {
        size_t k = end - 1;
        while (k > begin && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        size_t j = k;
        if (!is_whitespace(next_code_point(s, j))) break;
        end = k;
      }
    }
    if (begin > 0 && begin < s.size()) at_origin = false;
    s = s.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class StripAccents final : public Normalizer {
 public:
  void normalize(std::string& s, bool& at_origin) const override {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
      size_t start = i;
      char32_t c = next_code_point(s, i);
      if (is_combining_mark(c)) {
        if (out.empty()) at_origin = false;
        continue;
      }
      out.append(s, start, i - start);
    }
    s = std::move(out);
  }
};

class ByteLevelNormalizer final : public Normalizer {
 public:
  void normalize(std::string& s, bool&) const override { s = bytes_to_unicode(s); }
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> n) : items_(std::move(n)) {}
  void normalize(std::string& s, bool& at_origin) const override {
    for (const auto& n : items_) n->normalize(s, at_origin);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> items_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, int depth) {
  if (j.is_null()) return nullptr;
  check_component_depth(depth, "normalizer");
  std::string type = component_type(j, "normalizer");
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "Prepend") {
    return std::make_unique<Prepend>(get_required<std::string>(j, "prepend", "Prepend normalizer"));
  }
  if (type == "Replace") {
    return std::make_unique<Replace>(pattern_from_json(j, "Replace normalizer"),
                                     get_required<std::string>(j, "content", "Replace normalizer"));
  }
  if (type == "Strip") {
    return std::make_unique<Strip>(get_or(j, "strip_left", true), get_or(j, "strip_right", true));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> items;
    for (const auto& n : required_array(j, "normalizers", "Sequence normalizer")) {
      if (auto p = make_normalizer(n, depth + 1)) items.push_back(std::move(p));
    }
    return std::make_unique<SequenceNormalizer>(std::move(items));
  }
  throw std::runtime_error("unsupported normalizer type '" + type +
                           "' (supported: NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Prepend, "
                           "Replace, Strip, ByteLevel, Sequence)");
}

}  // namespace moe::tok
