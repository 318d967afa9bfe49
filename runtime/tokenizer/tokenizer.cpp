#include "runtime/tokenizer/tokenizer.h"

#include <fstream>
#include <stdexcept>

#include "runtime/tokenizer/tokenizer_impl.h"
#include "runtime/tokenizer/unicode.h"

namespace moe {

namespace {

std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw std::runtime_error("tokenizer: " + file + ": " + one_line(what));
}

// Largest tokenizer file read (the largest real tokenizer.json files are ~30 MB).
constexpr uintmax_t kMaxFileBytes = uintmax_t{256} << 20;

// Reads a regular file of at most kMaxFileBytes: a FIFO or a device such as /dev/zero would
// otherwise be read without bound.
std::string read_file(const std::filesystem::path& path) {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) fail(path.string(), "cannot open file (does it exist?)");
  if (!std::filesystem::is_regular_file(st)) {
    fail(path.string(), "not a regular file (a FIFO, device or directory); give the path of a file");
  }
  if (std::filesystem::file_size(path, ec) > kMaxFileBytes && !ec) {
    fail(path.string(), "larger than 256 MiB; this is not a tokenizer file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), "cannot open file");
  std::string out;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.append(buf, static_cast<size_t>(in.gcount()));
    if (out.size() > kMaxFileBytes) {  // checked while reading: the file may grow meanwhile
      fail(path.string(), "larger than 256 MiB; this is not a tokenizer file");
    }
  }
  if (in.bad()) fail(path.string(), "read error");
  return out;
}

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const tok::TokenizerImpl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::filesystem::path& tokenizer_json,
                          const std::filesystem::path& tokenizer_config_json) {
  std::string text = read_file(tokenizer_json);
  std::shared_ptr<tok::TokenizerImpl> impl;
  try {
    impl = tok::parse_tokenizer(text);
  } catch (const std::exception& e) {
    fail(tokenizer_json.string(), e.what());
  }
  std::filesystem::path cfg = tokenizer_config_json;
  if (cfg.empty()) cfg = tokenizer_json.parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::exists(cfg, ec)) {
    std::string cfg_text = read_file(cfg);
    try {
      tok::apply_config(*impl, cfg_text);
    } catch (const std::exception& e) {
      fail(cfg.string(), e.what());
    }
  }
  if (impl->chat_template.empty()) {  // newer checkpoints keep the template in its own file
    auto jinja = cfg.parent_path() / "chat_template.jinja";
    if (std::filesystem::exists(jinja, ec)) impl->chat_template = read_file(jinja);
  }
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json,
                               std::string_view tokenizer_config_json) {
  std::shared_ptr<tok::TokenizerImpl> impl;
  try {
    impl = tok::parse_tokenizer(tokenizer_json);
  } catch (const std::exception& e) {
    fail("tokenizer.json (in memory)", e.what());
  }
  if (!tokenizer_config_json.empty()) {
    try {
      tok::apply_config(*impl, tokenizer_config_json);
    } catch (const std::exception& e) {
      fail("tokenizer_config.json (in memory)", e.what());
    }
  }
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const tok::TokenizerImpl& t = *impl_;
  std::string sanitized;
  if (!tok::is_valid_utf8(text)) {
    sanitized = tok::utf8_lossy(text);
    text = sanitized;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<tok::Piece> pieces;
  // 1. Added tokens that match the raw text; 2. normalization of the text between them;
  // 3. added tokens that match normalized text; 4. pre-tokenization; 5. the model.
  for (const tok::TextSplit& raw : t.added.split_raw(text)) {
    // HF drops empty splits, even those of an added token (an lstrip/rstrip match inside the
    // whitespace that the previous match already took).
    if (raw.end <= raw.start) continue;
    if (raw.id >= 0) {
      ids.push_back(raw.id);
      continue;
    }
    std::string normalized(text.substr(raw.start, raw.end - raw.start));
    bool at_origin = raw.start == 0;
    if (t.normalizer) t.normalizer->normalize(normalized, at_origin);
    for (const tok::TextSplit& sub : t.added.split_normalized(normalized)) {
      if (sub.end <= sub.start) continue;
      if (sub.id >= 0) {
        ids.push_back(sub.id);
        continue;
      }
      pieces.clear();
      pieces.push_back({normalized.substr(sub.start, sub.end - sub.start), at_origin && sub.start == 0});
      if (t.pre_tokenizer) t.pre_tokenizer->pre_tokenize(pieces);
      for (const auto& p : pieces) t.model->tokenize(p.text, ids);
    }
  }
  if (add_special_tokens && t.post_processor) ids = t.post_processor->process(std::move(ids));
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const tok::TokenizerImpl& t = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* s = nullptr;
    if (const tok::AddedToken* a = t.added.by_id(id)) {
      s = &a->decode_form;
    } else {
      s = t.model->id_to_token(id);
    }
    if (!s) continue;
    if (skip_special_tokens && t.added.is_special_content(*s)) continue;  // HF checks the string
    tokens.push_back(*s);
  }
  std::string out;
  if (t.decoder) {
    for (const auto& piece : t.decoder->decode_chain(std::move(tokens))) out += piece;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
  }
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  const tok::TokenizerImpl& t = *impl_;
  if (const tok::AddedToken* a = t.added.by_id(id)) return a->decode_form;  // added tokens are text
  const std::string* s = t.model->id_to_token(id);
  if (!s) return {};
  if (!t.decoder) return *s;
  std::string out;
  for (const auto& piece : t.decoder->raw_chain({*s})) out += piece;
  return out;
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = impl_->added.token_to_id(token)) return id;
  return impl_->model->token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (const tok::AddedToken* a = impl_->added.by_id(id)) return a->decode_form;
  const std::string* s = impl_->model->id_to_token(id);
  return s ? *s : std::string();
}

bool Tokenizer::is_special(int32_t id) const {
  if (const tok::AddedToken* a = impl_->added.by_id(id)) {
    return impl_->added.is_special_content(a->decode_form);
  }
  const std::string* s = impl_->model->id_to_token(id);
  return s && impl_->added.is_special_content(*s);
}

std::string Tokenizer::chat_template() const { return impl_->chat_template; }

}  // namespace moe
