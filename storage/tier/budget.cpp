#include "storage/tier/budget.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "storage/io/expert_reader.h"

namespace moe {

uint64_t expert_cache_bytes(const ExpertRecordRef& r) {
  return r.compressed ? align_up(r.raw_bytes) : std::max(r.padded_bytes, align_up(r.stored_bytes));
}

uint64_t total_expert_bytes(const ExpertCatalog& catalog) {
  uint64_t total = 0;
  for (int l = 0; l < catalog.n_layers(); ++l)
    for (int e = 0; e < catalog.n_experts(l); ++e) total += expert_cache_bytes(catalog.record(l, e));
  return total;
}

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

uint64_t parse_budget(std::string_view text, uint64_t total) {
  const std::string shown(text);
  auto garbage = [&] {
    return std::invalid_argument(fmt::format(
        "--ram-budget '{}': expected a size like 6GiB, 512MiB or 1.5GB, or a percentage like 50%", shown));
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
    if (!(v > 0 && v <= 100))
      throw std::invalid_argument(fmt::format("--ram-budget '{}': a percentage must be above 0% and at most 100%", shown));
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
  if (!(bytes >= 1)) throw std::invalid_argument(fmt::format("--ram-budget '{}': the budget must be above zero", shown));
  if (bytes >= 0x1p63) throw std::invalid_argument(fmt::format("--ram-budget '{}': too large", shown));
  return uint64_t(bytes);
}

uint64_t check_budget(uint64_t budget, const ExpertCatalog& catalog, int top_k) {
  const int k = std::max(top_k, 1);
  uint64_t need = 0, largest = 0;
  int need_k = 0;
  std::vector<uint64_t> sizes;
  for (int l = 0; l < catalog.n_layers(); ++l) {
    sizes.clear();
    for (int e = 0; e < catalog.n_experts(l); ++e) sizes.push_back(expert_cache_bytes(catalog.record(l, e)));
    if (sizes.empty()) continue;
    std::sort(sizes.begin(), sizes.end(), std::greater<>());
    const int kl = std::min(k, int(sizes.size()));
    uint64_t sum = 0;
    for (int i = 0; i < kl; ++i) sum += sizes[size_t(i)];
    if (sum > need) need = sum, largest = sizes[0], need_k = kl;
  }
  if (budget >= need) return need;
  if (top_k <= 1)
    throw std::invalid_argument(fmt::format("ram budget {} is smaller than one expert ({}); raise --ram-budget",
                                            format_bytes(budget), format_bytes(largest)));
  throw std::invalid_argument(fmt::format("ram budget {} holds fewer experts than one layer's top-k ({} x {}); raise --ram-budget",
                                          format_bytes(budget), need_k, format_bytes(largest)));
}

}  // namespace moe
