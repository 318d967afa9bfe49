// Parsing what the user gives of a model's inputs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace moe::cli {

// "1,2,3" -> {1, 2, 3}; throws with the offending item on bad input.
std::vector<int32_t> parse_token_list(const std::string& s);

}  // namespace moe::cli
