#include "runtime/tokenizer/decoder.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <stdexcept>

#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/json_util.h"
#include "runtime/tokenizer/pattern_json.h"
#include "runtime/tokenizer/unicode.h"

namespace moe::tok {

namespace {

class ByteLevelDecoder final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      if (auto b = unicode_to_bytes(t)) {
        bytes += *b;
      } else {
        bytes += t;  // a character outside the byte map: HF keeps the token's own bytes
      }
    }
    std::vector<std::string> out;
    out.push_back(utf8_lossy(bytes));
    return out;
  }
  std::vector<std::string> raw_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens)
      if (auto b = unicode_to_bytes(t)) t = std::move(*b);
    return tokens;
  }
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Pattern p, std::string content) : pattern_(std::move(p)), content_(std::move(content)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens) t = pattern_.replace_all(t, content_);
    return tokens;
  }

 private:
  Pattern pattern_;
  std::string content_;
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "<0xAB>" -> 0xAB, parsed like Rust's u8::from_str_radix(&token[3..5], 16).
std::optional<unsigned char> byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return std::nullopt;
  int hi = hex_value(t[3]), lo = hex_value(t[4]);
  if (t[3] == '+' && lo >= 0) return static_cast<unsigned char>(lo);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

class ByteFallbackDecoder final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    auto flush = [&]() {
      if (pending.empty()) return;
      if (is_valid_utf8(pending)) {
        out.push_back(pending);
      } else {
        for (size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (auto& t : tokens) {
      if (auto b = byte_token(t)) {
        pending.push_back(static_cast<char>(*b));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    return out;
  }
  std::vector<std::string> raw_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens)
      if (auto b = byte_token(t)) t = std::string(1, static_cast<char>(*b));
    return tokens;
  }
};

class FuseDecoder final : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    std::vector<std::string> out;
    out.push_back(std::move(all));
    return out;
  }
};

// Removes up to `start` leading and `stop` trailing occurrences of a character from each token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  std::vector<std::string> raw_chain(std::vector<std::string> tokens) const override { return tokens; }
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens) {
      std::vector<std::pair<size_t, char32_t>> chars;  // (byte offset, char)
      size_t i = 0;
      while (i < t.size()) {
        size_t b = i;
        chars.push_back({b, next_code_point(t, i)});
      }
      size_t start_cut = 0;
      for (size_t k = 0; k < start_ && k < chars.size(); ++k) {
        if (chars[k].second != content_) break;
        start_cut = k + 1;
      }
      size_t stop_cut = chars.size();
      for (size_t k = 0; k < stop_ && k < chars.size(); ++k) {
        size_t idx = chars.size() - k - 1;
        if (chars[idx].second != content_) break;
        stop_cut = idx;
      }
      if (stop_cut < start_cut) stop_cut = start_cut;
      size_t from = start_cut < chars.size() ? chars[start_cut].first : t.size();
      size_t to = stop_cut < chars.size() ? chars[stop_cut].first : t.size();
      t = t.substr(from, to - from);
    }
    return tokens;
  }

 private:
  char32_t content_;
  size_t start_, stop_;
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool prepend) : replacement_(replacement), prepend_(prepend) {}
  std::vector<std::string> raw_chain(std::vector<std::string> tokens) const override {
    return MetaspaceDecoder(replacement_, false).decode_chain(std::move(tokens));
  }
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      const std::string& t = tokens[k];
      std::string out;
      out.reserve(t.size());
      size_t i = 0;
      while (i < t.size()) {
        size_t b = i;
        char32_t c = next_code_point(t, i);
        if (c == replacement_) {
          if (!(k == 0 && prepend_)) out.push_back(' ');
        } else {
          out.append(t, b, i - b);
        }
      }
      tokens[k] = std::move(out);
    }
    return tokens;
  }

 private:
  char32_t replacement_;
  bool prepend_;  // prepend_scheme != "never": the replacement in the first token is dropped
};

class BpeDecoder final : public Decoder {
 public:
  explicit BpeDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  std::vector<std::string> raw_chain(std::vector<std::string> tokens) const override {
    if (!suffix_.empty())
      for (auto& t : tokens) t = Pattern::literal(suffix_).replace_all(t, " ");
    return tokens;
  }
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    if (suffix_.empty()) return tokens;
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string repl = k + 1 == tokens.size() ? "" : " ";
      tokens[k] = Pattern::literal(suffix_).replace_all(tokens[k], repl);
    }
    return tokens;
  }

 private:
  std::string suffix_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> items) : items_(std::move(items)) {}
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (const auto& d : items_) tokens = d->decode_chain(std::move(tokens));
    return tokens;
  }
  std::vector<std::string> raw_chain(std::vector<std::string> tokens) const override {
    for (const auto& d : items_) tokens = d->raw_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> items_;
};

char32_t one_char(const std::string& s, const std::string& where) {
  size_t i = 0;
  if (s.empty()) throw std::runtime_error(where + ": expected a single character");
  char32_t c = next_code_point(s, i);
  if (i != s.size()) throw std::runtime_error(where + ": expected a single character, got '" + s + "'");
  return c;
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, int depth) {
  if (j.is_null()) return nullptr;
  check_component_depth(depth, "decoder");
  std::string type = component_type(j, "decoder");
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(pattern_from_json(j, "Replace decoder"),
                                            get_required<std::string>(j, "content", "Replace decoder"));
  }
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(
        one_char(get_required<std::string>(j, "content", "Strip decoder"), "Strip decoder"),
        get_or<size_t>(j, "start", 0), get_or<size_t>(j, "stop", 0));
  }
  if (type == "Metaspace") {
    std::string rep = get_or<std::string>(j, "replacement", "\xE2\x96\x81");
    bool prepend = get_or(j, "add_prefix_space", true);
    if (auto it = j.find("prepend_scheme"); it != j.end() && it->is_string()) {
      prepend = it->get<std::string>() != "never";
    }
    return std::make_unique<MetaspaceDecoder>(one_char(rep, "Metaspace decoder"), prepend);
  }
  if (type == "BPEDecoder") return std::make_unique<BpeDecoder>(get_or<std::string>(j, "suffix", "</w>"));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> items;
    for (const auto& d : required_array(j, "decoders", "Sequence decoder")) {
      if (auto x = make_decoder(d, depth + 1)) items.push_back(std::move(x));
    }
    return std::make_unique<SequenceDecoder>(std::move(items));
  }
  throw std::runtime_error("unsupported decoder type '" + type +
                           "' (supported: ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, "
                           "BPEDecoder, Sequence)");
}

}  // namespace moe::tok
