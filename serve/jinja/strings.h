// Python str algorithms used by both the methods (s.strip()) and the filters (s | trim).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moe::jinja::pystr {

// str.strip(chars) / lstrip / rstrip; chars nullopt: whitespace.
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split(sep, maxsplit) / rsplit; sep nullopt: runs of whitespace.
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> splitlines(std::string_view s, bool keepends);
std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
// str.find / rfind over code point indices; -1 when absent.
int64_t find(std::string_view s, std::string_view sub, bool reverse);
int64_t count(std::string_view s, std::string_view sub);
std::string pad(std::string_view s, int64_t width, char32_t fill, int where);  // -1 ljust, 0 center, 1 rjust

}  // namespace moe::jinja::pystr
