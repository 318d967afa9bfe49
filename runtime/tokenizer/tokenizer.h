// Hugging Face `tokenizer.json` tokenizer (BPE models), output-identical to HF `tokenizers`.
//
// Supported components (anything else is rejected with std::runtime_error at load time):
//   model:          BPE (byte_fallback, fuse_unk, ignore_merges, unk_token,
//                   continuing_subword_prefix, end_of_word_suffix; dropout is ignored)
//   normalizer:     NFC, NFD, NFKC, NFKD, Lowercase, StripAccents, Prepend, Replace, Strip,
//                   ByteLevel, Sequence
//   pre_tokenizer:  Split, ByteLevel, Metaspace, Digits, Punctuation, Whitespace,
//                   WhitespaceSplit, Sequence
//   post_processor: TemplateProcessing (single sequence), ByteLevel, RobertaProcessing,
//                   BertProcessing, Sequence
//   decoder:        ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, BPEDecoder, Sequence
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

namespace tok {
struct TokenizerImpl;
}

class Tokenizer {
 public:
  // Reads tokenizer.json and tokenizer_config.json. When `tokenizer_config_json` is empty, the
  // tokenizer_config.json next to tokenizer.json is used if it exists; a missing config is not an
  // error. A chat_template.jinja next to the config is used when the config has no chat_template.
  // Throws std::runtime_error with a one-line message naming the file on any problem.
  static Tokenizer load(const std::filesystem::path& tokenizer_json,
                        const std::filesystem::path& tokenizer_config_json = {});
  // Same, from the files' contents (an empty config means none).
  static Tokenizer from_json(std::string_view tokenizer_json,
                             std::string_view tokenizer_config_json = {});

  // == HF Tokenizer.encode(text, add_special_tokens=...).ids. Invalid UTF-8 in `text` is first
  // replaced by U+FFFD (like Rust's String::from_utf8_lossy).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // == HF Tokenizer.decode(ids, skip_special_tokens=...). Unknown ids are skipped, as in HF.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // The bytes token `id` adds in the middle of a text (for grammars): raw, so a token holding
  // part of a UTF-8 character gives those bytes, and no leading space is stripped. Empty for an
  // unknown id.
  std::string token_bytes(int32_t id) const;

  int32_t vocab_size() const;             // largest id + 1, including added tokens
  std::optional<int32_t> bos_id() const;  // tokenizer_config.json bos_token, else the post-processor's
  std::optional<int32_t> eos_id() const;  // tokenizer_config.json eos_token
  std::optional<int32_t> token_to_id(std::string_view token) const;
  // Raw vocab string (== HF id_to_token: an added token with normalized=true gives its
  // normalized form); empty for an unknown id.
  std::string id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;          // a special added token (skipped by skip_special_tokens)
  std::string chat_template() const;          // raw template from the config, empty if none

  // Copies share the (immutable) tokenizer; copying and moving are cheap and thread-safe.
  Tokenizer(const Tokenizer&) = default;
  Tokenizer(Tokenizer&&) noexcept = default;
  Tokenizer& operator=(const Tokenizer&) = default;
  Tokenizer& operator=(Tokenizer&&) noexcept = default;
  ~Tokenizer();

 private:
  explicit Tokenizer(std::shared_ptr<const tok::TokenizerImpl> impl);
  std::shared_ptr<const tok::TokenizerImpl> impl_;
};

// UTF-8-safe incremental decoding for streaming token by token: push() returns only complete
// UTF-8 text; concatenating all push() results and finish() equals decode(all ids).
// (The one exception, shared with HF's DecodeStream: when later ids change how earlier ones
// decode, e.g. an invalid byte appended to a run of ByteFallback <0xXX> tokens turns the whole
// run into U+FFFD, text already returned cannot be taken back.)
// After finish() the decoder is empty and can be reused for a new sequence.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special_tokens = false);
  std::string push(int32_t id);
  std::string finish();

 private:
  Tokenizer tok_;
  bool skip_special_;
  std::vector<int32_t> window_;  // ids decoded together for context
  size_t prefix_count_ = 0;      // window_[0:prefix_count_] decodes to prefix_
  std::string prefix_;
  std::vector<int32_t> all_;     // every id pushed since the last finish()
  std::string emitted_;          // everything returned by push() since the last finish()
};

}  // namespace moe
