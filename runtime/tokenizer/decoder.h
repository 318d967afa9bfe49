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
  // The bytes the tokens add in the middle of a text (for grammars): like decode_chain, but
  // invalid UTF-8 stays as it is (a token may hold part of a character) and nothing is stripped
  // because it starts or ends the text.
  virtual std::vector<std::string> raw_chain(std::vector<std::string> tokens) const {
    return decode_chain(std::move(tokens));
  }
};

// nullptr for JSON null. Throws std::runtime_error for unsupported decoders.
// `depth`: how many Sequences enclose `j` (bounded by kMaxComponentDepth).
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j, int depth = 0);

}  // namespace moe::tok
