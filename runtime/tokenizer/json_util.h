// Small helpers for reading tokenizer.json fields with clear error messages.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace moe::tok {

// The "type" field of a component object (`what` names the component kind in errors).
inline std::string component_type(const nlohmann::json& j, const char* what) {
  if (!j.is_object()) throw std::runtime_error(std::string(what) + " must be a JSON object");
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) {
    throw std::runtime_error(std::string(what) + " has no \"type\" field");
  }
  return it->get<std::string>();
}

// j[key] as T, or `fallback` if the key is missing or null.
template <typename T>
T get_or(const nlohmann::json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return it->get<T>();
}

// j[key] as T; throws if missing.
template <typename T>
T get_required(const nlohmann::json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    throw std::runtime_error(where + " is missing the \"" + key + "\" field");
  }
  return it->get<T>();
}

}  // namespace moe::tok
