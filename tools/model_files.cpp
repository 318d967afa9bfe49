#include "tools/model_files.h"

#include <fmt/format.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace moe::cli {

std::string read_text_file(const std::string& path, const std::string& flag) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw std::invalid_argument(fmt::format("{} {}: is a directory; give a text file", flag, path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{} {}: cannot open", flag, path));
  // Pipes (/dev/stdin) stay usable: the bound is on bytes read, not on the file's kind.
  std::string out;
  char buf[1 << 16];
  while (out.size() <= kMaxTextBytes && in.read(buf, sizeof buf).gcount() > 0) out.append(buf, size_t(in.gcount()));
  if (out.size() > kMaxTextBytes)
    throw std::invalid_argument(fmt::format("{} {}: longer than {} MiB (the most read as text); give a shorter file",
                                            flag, path, kMaxTextBytes >> 20));
  if (in.bad()) throw std::runtime_error(fmt::format("{} {}: read error", flag, path));
  return out;
}

std::vector<int32_t> parse_int_list(const std::string& s, std::string_view flag, std::string_view what) {
  std::vector<int32_t> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    int32_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size())
      throw std::invalid_argument(fmt::format("{}: '{}' is not an integer {} (expected e.g. 1,2,3)", flag, item, what));
    out.push_back(v);
    i = j + 1;
  }
  if (out.empty()) throw std::invalid_argument(fmt::format("{}: nothing given (expected e.g. 1,2,3)", flag));
  return out;
}

std::string model_stem(const std::string& path) {
  std::filesystem::path q = std::filesystem::path(path).lexically_normal();
  if (q.filename().empty()) q = q.parent_path();
  return q.extension() == ".moepack" ? q.stem().string() : q.filename().string();
}

}  // namespace moe::cli
