// Parsing what the user gives of a model's inputs.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe::cli {

// The whole of a text input file (a prompt, an evaluation text). At most kMaxTextBytes are
// read, so /dev/zero or an endless pipe is an error, not an unbounded read; `flag` (e.g.
// "--prompt-file") is named in the messages.
constexpr size_t kMaxTextBytes = size_t(64) << 20;
std::string read_text_file(const std::string& path, const std::string& flag);

// A model's name for responses: the path's last part without .moepack ("models/tiny-moe/" ->
// "tiny-moe").
std::string model_stem(const std::string& path);

// "1,2,3" -> {1, 2, 3}; throws with `flag` and the offending item on bad input (`what`: what
// one item is, for the message).
std::vector<int32_t> parse_int_list(const std::string& s, std::string_view flag = "--tokens",
                                    std::string_view what = "token id");

}  // namespace moe::cli
