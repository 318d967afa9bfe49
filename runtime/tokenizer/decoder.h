// Decoders ("decoder" in tokenizer.json): turn token strings back into text.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moe::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // HF decode_chain: transforms the list of token strings; the final text is their concatenation.
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
};

// nullptr for JSON null. Throws std::runtime_error for unsupported decoders.
// `depth`: how many Sequences enclose `j` (bounded by kMaxComponentDepth).
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, int depth = 0);

}  // namespace moe::tok
