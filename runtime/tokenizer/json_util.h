// Small helpers for reading tokenizer.json fields with clear error messages.
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace moe::tok {

// Deepest nesting of Sequence components (normalizers, pre-tokenizers, decoders, post-processors).
// Real files nest one or two levels; the bound keeps hostile files from recursing without limit.
constexpr int kMaxComponentDepth = 64;

// Throws when a component nested `depth` Sequences deep is beyond kMaxComponentDepth.
inline void check_component_depth(int depth, const char* section) {
  if (depth > kMaxComponentDepth) {
    throw std::runtime_error(std::string("\"") + section + "\": Sequence components nested more than " +
                             std::to_string(kMaxComponentDepth) +
                             " levels deep; flatten the Sequence (real tokenizers nest 1-2 levels)");
  }
}

// The "type" field of a component object (`what` names the component kind in errors).
inline std::string component_type(const nlohmann::json& j, const char* what) {
  if (!j.is_object()) throw std::runtime_error(std::string(what) + " must be a JSON object");
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) {
    throw std::runtime_error(std::string(what) + " has no \"type\" field");
  }
  return it->get<std::string>();
}

// it->get<T>(), with a JSON type error turned into a message naming the field.
template <typename T>
T get_field(const nlohmann::json& value, const char* key) {
  try {
    return value.get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("field \"") + key + "\" has the wrong type (" + e.what() + ")");
  }
}

// j[key] as T, or `fallback` if the key is missing or null.
template <typename T>
T get_or(const nlohmann::json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  return get_field<T>(*it, key);
}

// j[key] itself (no copy); throws if missing or null.
inline const nlohmann::json& required_field(const nlohmann::json& j, const char* key,
                                            const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    throw std::runtime_error(where + " is missing the \"" + key + "\" field");
  }
  return *it;
}

// j[key] as an array (no copy); throws if missing or not an array.
inline const nlohmann::json& required_array(const nlohmann::json& j, const char* key,
                                            const std::string& where) {
  const nlohmann::json& v = required_field(j, key, where);
  if (!v.is_array()) throw std::runtime_error(where + ": \"" + key + "\" must be an array");
  return v;
}

// j[key] as T; throws if missing.
template <typename T>
T get_required(const nlohmann::json& j, const char* key, const std::string& where) {
  return get_field<T>(required_field(j, key, where), key);
}

}  // namespace moe::tok
