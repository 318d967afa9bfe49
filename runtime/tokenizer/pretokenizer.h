// Pre-tokenizers from tokenizer.json ("pre_tokenizer" field): split normalized text into words.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moe::tok {

struct Piece {
  std::string text;
  // True when the piece starts at the first character of the original input
  // (HF: offsets_original().0 == 0); used by Metaspace's prepend_scheme "first".
  bool at_origin = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every piece by its sub-pieces; empty pieces are dropped.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

// Builds the pre-tokenizer described by `j`; nullptr for JSON null. Throws std::runtime_error.
// `depth`: how many Sequences enclose `j` (bounded by kMaxComponentDepth).
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, int depth = 0);

}  // namespace moe::tok
