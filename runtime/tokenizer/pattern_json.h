// Reads the {"String": ...} / {"Regex": ...} "pattern" field of Split / Replace components.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/tokenizer/regex.h"

namespace moe::tok {

inline Pattern pattern_from_json(const nlohmann::json& component, const std::string& where) {
  auto it = component.find("pattern");
  if (it == component.end() || !it->is_object()) {
    throw std::runtime_error(where + " is missing the \"pattern\" object");
  }
  if (auto s = it->find("String"); s != it->end() && s->is_string()) {
    return Pattern::literal(s->get<std::string>());
  }
  if (auto r = it->find("Regex"); r != it->end() && r->is_string()) {
    return Pattern::regex(r->get<std::string>());
  }
  throw std::runtime_error(where + " pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

}  // namespace moe::tok
