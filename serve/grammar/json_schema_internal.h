// Pieces of the JSON Schema compiler kept out of json_schema.cpp: integer ranges and string
// formats (json_schema_numbers.cpp), allOf merging (json_schema_allof.cpp).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/grammar/grammar.h"

namespace moe::grammar::detail {

// Decimal integers n with lo <= n <= hi (nullopt: unbounded on that side), written without
// leading zeros or "-0". Throws GrammarError when no integer fits.
Expr integer_range(std::optional<int64_t> lo, std::optional<int64_t> hi);

// The integer bounds of `schema` (minimum, maximum, exclusiveMinimum, exclusiveMaximum; draft-4
// boolean exclusive flags too), rounded inward. `where` names the schema in errors.
std::pair<std::optional<int64_t>, std::optional<int64_t>> integer_bounds(const nlohmann::ordered_json& schema,
                                                                          std::string_view where);

// The text between the quotes of a string in format `name`; nullopt when unsupported.
std::optional<Expr> string_format(std::string_view name);

// allOf: the parts (branches flattened through $ref and nested allOf, each with its JSON
// pointer) merged into one schema: properties and required unite (a property in two parts gets
// both schemas as an allOf), types intersect, other keywords must not disagree, and
// additionalProperties only where no part's rejects another part's property.
nlohmann::ordered_json merge_all_of(const std::vector<std::pair<const nlohmann::ordered_json*, std::string>>& parts,
                                   const std::string& ptr);

// Shared with json_schema.cpp: keywords that only annotate, and the error format.
bool is_annotation(std::string_view keyword);
[[noreturn]] void fail(std::string_view msg, const std::string& ptr);

}  // namespace moe::grammar::detail
