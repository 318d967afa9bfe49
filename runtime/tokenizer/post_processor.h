// Post-processors ("post_processor" in tokenizer.json): special tokens around a single sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moe::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Adds special tokens around `ids` (only called when add_special_tokens is true).
  virtual std::vector<int32_t> process(std::vector<int32_t> ids) const = 0;
  // The first special token id placed before the sequence, if any (used as a BOS fallback).
  virtual std::optional<int32_t> leading_special() const { return std::nullopt; }
  // Throws std::runtime_error if a token id it adds is not below `vocab_size`.
  virtual void check_ids(int32_t /*vocab_size*/) const {}
};

// nullptr for JSON null. Throws std::runtime_error for unsupported processors.
// `depth`: how many Sequences enclose `j` (bounded by kMaxComponentDepth).
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& j, int depth = 0);

}  // namespace moe::tok
