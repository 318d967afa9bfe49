// Opening what a model directory or pack holds: weights + config, and the tokenizer.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/model.h"
#include "runtime/tokenizer/tokenizer.h"

namespace moe::cli {

// From a model directory's tokenizer files, or from the JSON a .moepack embeds when
// `model` is a file.
Tokenizer load_tokenizer(const std::filesystem::path& model);
Tokenizer load_pack_tokenizer(const std::filesystem::path& pack);
// "1,2,3" -> {1, 2, 3}; throws with the offending item on bad input.
std::vector<int32_t> parse_token_list(const std::string& s);

}  // namespace moe::cli
