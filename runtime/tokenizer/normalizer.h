// Normalizers from tokenizer.json ("normalizer" field).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace moe::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Normalizes `s` in place. `at_origin` says whether the first character of `s` still starts at
  // the first character of the original text; normalizers that drop leading characters clear it
  // (Metaspace's prepend_scheme "first" depends on it).
  virtual void normalize(std::string& s, bool& at_origin) const = 0;
};

// Builds the normalizer described by `j`; nullptr for JSON null. Throws std::runtime_error for an
// unsupported or malformed normalizer.
// `depth`: how many Sequences enclose `j` (bounded by kMaxComponentDepth).
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, int depth = 0);

}  // namespace moe::tok
