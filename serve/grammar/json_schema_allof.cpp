// allOf merging for the JSON Schema compiler: pure JSON in, one schema out.
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "serve/grammar/json_schema_internal.h"

namespace moe::grammar::detail {

using json = nlohmann::ordered_json;

json merge_all_of(const std::vector<std::pair<const json*, std::string>>& parts, const std::string& ptr) {
  json merged = json::object(), props = json::object(), required = json::array();
  std::optional<std::vector<std::string>> types;  // the intersection of the branches' types
  bool has_props = false;
  for (const auto& [p, pp] : parts) {
    for (const auto& [k, v] : p->items()) {
      if (is_annotation(k) || k == "allOf" || k == "nullable" || k == "properties" || k == "required" ||
          k == "additionalProperties")
        continue;
      if (k == "type") {
        const json list = v.is_array() ? v : json::array({v});
        std::vector<std::string> mine, both;
        for (const auto& t : list) {
          if (!t.is_string()) fail(fmt::format("unknown type {}", t.dump()), pp);
          mine.push_back(t.get<std::string>());
        }
        auto has = [](const std::vector<std::string>& l, std::string_view t) { return std::find(l.begin(), l.end(), t) != l.end(); };
        if (!types) {
          types = std::move(mine);
          continue;
        }
        for (const auto& t : *types) {  // integer and number meet in integer
          const bool meet = (t == "integer" && has(mine, "number")) || (t == "number" && has(mine, "integer"));
          const std::string keep = has(mine, t) ? t : meet ? "integer" : "";
          if (!keep.empty() && !has(both, keep)) both.push_back(keep);
        }
        types = std::move(both);
        continue;
      }
      // Other keywords combine when only one branch has them (or all say the same).
      if (merged.contains(k) && merged[k] != v)
        fail(fmt::format("allOf: keyword '{}' differs between branches; they cannot be combined", k), pp);
      merged[k] = v;
    }
    has_props = has_props || p->contains("properties");
    if (auto it = p->find("properties"); it != p->end() && it->is_object())
      for (const auto& [k, v] : it->items()) {
        if (!props.contains(k))
          props[k] = v;
        else if (props[k] != v)
          props[k] = json{{"allOf", json::array({props[k], v})}};
      }
    if (auto it = p->find("required"); it != p->end() && it->is_array())
      for (const auto& r : *it)
        if (std::find(required.begin(), required.end(), r) == required.end()) required.push_back(r);
  }
  std::optional<json> extra;
  bool any_false = false, any_true = false;
  for (const auto& [p, pp] : parts) {
    auto ap = p->find("additionalProperties");
    if (ap == p->end()) continue;
    if (ap->is_boolean() && ap->get<bool>()) {
      any_true = true;
      continue;
    }
    const json* own = p->contains("properties") ? &(*p)["properties"] : nullptr;
    for (const auto& [k, v] : props.items())
      if (!own || !own->contains(k)) fail(fmt::format("allOf: additionalProperties here rejects property '{}' of another branch", k), pp);
    for (const auto& r : required)
      if (!props.contains(r.get<std::string>())) fail(fmt::format("allOf: additionalProperties here constrains required '{}'", r.get<std::string>()), pp);
    if (ap->is_boolean()) {
      any_false = true;
    } else if (extra && *extra != *ap) {
      fail("allOf: differing additionalProperties schemas cannot be combined", pp);
    } else {
      extra = *ap;
    }
  }
  if (types) {
    if (types->empty()) fail("allOf: the branches' types have nothing in common", ptr);
    merged["type"] = types->size() == 1 ? json((*types)[0]) : json(*types);
  }
  if (has_props) merged["properties"] = std::move(props);
  if (!required.empty()) merged["required"] = std::move(required);
  if (any_false)
    merged["additionalProperties"] = false;
  else if (extra)
    merged["additionalProperties"] = *extra;
  else if (any_true)
    merged["additionalProperties"] = true;
  return merged;
}

}  // namespace moe::grammar::detail
