// Helpers shared by the tokenizer tests: inline tokenizer.json builders and fixture discovery.
#pragma once

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/tokenizer.h"

namespace moe::test {

inline std::filesystem::path source_dir() { return MOE_SOURCE_DIR; }

// Fixture directories (tests/fixtures/<name>) that hold a tokenizer.json.
inline std::vector<std::filesystem::path> fixture_dirs() {
  std::vector<std::filesystem::path> out;
  auto root = source_dir() / "tests" / "fixtures";
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) return out;
  for (const auto& e : std::filesystem::directory_iterator(root)) {
    if (std::filesystem::exists(e.path() / "tokenizer.json")) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A complete tokenizer.json document (as HF writes it) around a BPE model.
inline nlohmann::json bpe_tokenizer(nlohmann::json vocab, nlohmann::json merges) {
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", nlohmann::json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", std::move(vocab)},
            {"merges", std::move(merges)}}}};
}

// Byte-level vocabulary: the 256 byte characters get ids 0..255.
inline nlohmann::json byte_level_vocab() {
  nlohmann::json v = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) v[tok::bytes_to_unicode(std::string(1, static_cast<char>(b)))] = b;
  return v;
}

// A Llama-style vocabulary: <unk>, <s>, </s>, then <0x00>..<0xFF> (ids 3..258), then `extra`.
inline nlohmann::json llama_vocab(const std::vector<std::string>& extra) {
  nlohmann::json v = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v[name] = 3 + b;
  }
  int id = 259;
  for (const auto& t : extra) v[t] = id++;
  return v;
}

inline nlohmann::json llama_decoder() {
  return nlohmann::json::parse(R"({"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
      {"type": "ByteFallback"}, {"type": "Fuse"},
      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})");
}

inline Tokenizer make(const nlohmann::json& j) { return Tokenizer::from_json(j.dump()); }

}  // namespace moe::test
