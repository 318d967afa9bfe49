// The pathological texts of the tokenizer's linear-time acceptance check: long runs that made
// the normalizer or the pre-tokenizer regex quadratic. scripts/tokenizer-pathological.py builds
// the same texts (keep the two in step) and writes tests/tokenizer/pathological_golden.txt, the HF
// token count and FNV-1a hash of each; test_pathological.cpp compares against it and
// bench/bench_tokenizer.cpp times it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moe::test {

// `unit` repeated while the text stays within `bytes`, after `head`.
inline std::string repeat_to(std::string head, const std::string& unit, size_t bytes) {
  while (head.size() + unit.size() <= bytes) head += unit;
  return head;
}

// (name, text) pairs, each text at most `bytes` long.
inline std::vector<std::pair<std::string, std::string>> pathological_texts(size_t bytes = 1 << 20) {
  return {
      {"marks_run", repeat_to("a", "\xCC\x81", bytes)},             // 'a' then U+0301 ...
      {"marks_unsorted", repeat_to("a", "\xCC\x81\xCC\x96", bytes)},  // U+0301 U+0316: reordered
      {"mark_pairs", repeat_to("", "a\xCC\x81x\xCC\x96", bytes)},  // base+mark pairs
      {"spaces", repeat_to("", " ", bytes)},
      {"digits", repeat_to("", "0123456789", bytes)},
      {"word", repeat_to("", "abcdefghijklmnopqrstuvwxyz", bytes)},
  };
}

// FNV-1a (64-bit) over the ids as 4-byte little-endian integers.
inline uint64_t fnv1a_ids(const std::vector<int32_t>& ids) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t id : ids) {
    auto u = static_cast<uint32_t>(id);
    for (int k = 0; k < 4; ++k) {
      h ^= (u >> (8 * k)) & 0xFF;
      h *= 0x100000001b3ull;
    }
  }
  return h;
}

// The tokenizers of the golden file, relative to the source tree.
inline std::vector<std::string> pathological_tokenizers() {
  return {"models/tiny-moe/tokenizer.json", "tests/fixtures/qwen3_moe/tokenizer.json",
          "tests/fixtures/olmoe/tokenizer.json", "tests/fixtures/mixtral/tokenizer.json"};
}

}  // namespace moe::test
