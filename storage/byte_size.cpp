#include "storage/byte_size.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace moe {

std::string format_bytes(uint64_t b) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(b);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", b);
  return fmt::format("{:.{}f} {}", v, v < 100 ? 1 : 0, units[u]);
}

namespace {

// percent: whether "N%" (of total) is allowed; a size flag with no total refuses it.
uint64_t parse_bytes(std::string_view text, uint64_t total, std::string_view flag, bool percent) {
  const std::string shown(text);
  auto garbage = [&] {
    return std::invalid_argument(fmt::format("{} '{}': expected a size like 6GiB, 512MiB or 1.5GB{}", flag, shown,
                                             percent ? ", or a percentage like 50%" : ""));
  };
  while (!text.empty() && std::isspace(uint8_t(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(uint8_t(text.back()))) text.remove_suffix(1);
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || !std::isfinite(v)) throw garbage();
  std::string unit(end, text.data() + text.size());
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  for (char& c : unit) c = char(std::tolower(uint8_t(c)));

  if (unit == "%") {
    if (!percent)
      throw std::invalid_argument(
          fmt::format("{} '{}': takes a size like 512MiB or 2GiB, not a percentage", flag, shown));
    if (!(v > 0 && v <= 100))
      throw std::invalid_argument(fmt::format("{} '{}': a percentage must be above 0% and at most 100%", flag, shown));
    return uint64_t(std::floor(double(total) * v / 100.0));
  }
  double mult = 0;
  const std::pair<const char*, double> units[] = {
      {"", 1},           {"b", 1},          {"k", 0x1p10},     {"kib", 0x1p10}, {"kb", 1e3},  {"m", 0x1p20},
      {"mib", 0x1p20},   {"mb", 1e6},       {"g", 0x1p30},     {"gib", 0x1p30}, {"gb", 1e9},  {"t", 0x1p40},
      {"tib", 0x1p40},   {"tb", 1e12}};
  for (const auto& [name, m] : units)
    if (unit == name) mult = m;
  if (mult == 0) throw garbage();
  const double bytes = v * mult;
  if (!(bytes >= 1)) throw std::invalid_argument(fmt::format("{} '{}': the budget must be above zero", flag, shown));
  if (bytes >= 0x1p63) throw std::invalid_argument(fmt::format("{} '{}': too large", flag, shown));
  return uint64_t(bytes);
}

}  // namespace

uint64_t parse_budget(std::string_view text, uint64_t total, std::string_view flag) {
  return parse_bytes(text, total, flag, true);
}

uint64_t parse_size(std::string_view text, std::string_view flag) { return parse_bytes(text, 0, flag, false); }

}  // namespace moe
