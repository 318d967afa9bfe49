// Internal state shared by Tokenizer and StreamDecoder.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "runtime/tokenizer/added_tokens.h"
#include "runtime/tokenizer/bpe.h"
#include "runtime/tokenizer/decoder.h"
#include "runtime/tokenizer/normalizer.h"
#include "runtime/tokenizer/post_processor.h"
#include "runtime/tokenizer/pretokenizer.h"

namespace moe::tok {

struct TokenizerImpl {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Bpe> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  AddedVocabulary added;
  int32_t vocab_size = 0;
  std::optional<int32_t> bos;
  std::optional<int32_t> eos;
  std::string chat_template;
};

// Parses tokenizer.json (and optionally tokenizer_config.json) text. Errors are thrown as
// std::runtime_error without the file name (the caller adds it).
std::shared_ptr<TokenizerImpl> parse_tokenizer(std::string_view tokenizer_json);
void apply_config(TokenizerImpl& impl, std::string_view tokenizer_config_json);

}  // namespace moe::tok
