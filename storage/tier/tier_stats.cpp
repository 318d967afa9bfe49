#include "storage/tier/tier_stats.h"

#include <fmt/format.h>

#include "storage/tier/budget.h"

namespace moe {

namespace {

double per_token(double v, uint64_t tokens) { return tokens ? v / double(tokens) : 0.0; }

}  // namespace

nlohmann::json tier_stats_json(const TierStats& s, uint64_t tokens) {
  const TierLayerStats& t = s.total;
  nlohmann::json j = {
      {"ram_hit_rate", t.hit_rate()},
      {"disk_bytes_per_token", per_token(double(t.disk_bytes()), tokens)},
      {"miss_bytes_per_token", per_token(double(t.bytes_read), tokens)},
      {"stall_ms_per_token", per_token(double(t.stall_ns) / 1e6, tokens)},
      {"tokens", tokens},
      {"hits", t.hits},
      {"misses", t.misses},
      {"disk_bytes", t.disk_bytes()},
      {"miss_bytes", t.bytes_read},
      {"stall_ms", double(t.stall_ns) / 1e6},
      {"evictions", s.evictions},
      {"inflight_waits", s.inflight_waits},
      {"prefetches", t.prefetches},
      {"prefetch_bytes", t.prefetch_bytes},
      {"checksum_verifications", s.checksum_verifications},
      {"resident_experts", s.resident_experts},
      {"resident_bytes", s.resident_bytes},
      {"peak_resident_bytes", s.peak_resident_bytes},
      {"allocated_bytes", s.allocated_bytes},
      {"peak_allocated_bytes", s.peak_allocated_bytes},
      {"staging_bytes", s.staging_bytes},
      {"budget_bytes", s.budget_bytes},
  };
  nlohmann::json hr = nlohmann::json::array(), db = nlohmann::json::array(), st = nlohmann::json::array(),
                 hi = nlohmann::json::array(), mi = nlohmann::json::array();
  for (const TierLayerStats& l : s.layers) {
    hr.push_back(l.hit_rate());
    db.push_back(per_token(double(l.disk_bytes()), tokens));
    st.push_back(per_token(double(l.stall_ns) / 1e6, tokens));
    hi.push_back(l.hits);
    mi.push_back(l.misses);
  }
  j["layers"] = {{"ram_hit_rate", hr}, {"disk_bytes_per_token", db}, {"stall_ms_per_token", st}, {"hits", hi}, {"misses", mi}};
  return j;
}

std::string format_tier_stats(const TierStats& s, uint64_t tokens) {
  const TierLayerStats& t = s.total;
  std::string out = fmt::format("ram tier: hit rate {:.1f}% ({} hits, {} misses), {} read from disk, {:.1f} ms stalled\n",
                                100.0 * t.hit_rate(), t.hits, t.misses, format_bytes(t.disk_bytes()), double(t.stall_ns) / 1e6);
  if (tokens)
    out += fmt::format("ram tier: per token {} read, {:.2f} ms stalled ({} tokens)\n",
                       format_bytes(uint64_t(per_token(double(t.disk_bytes()), tokens))),
                       per_token(double(t.stall_ns) / 1e6, tokens), tokens);
  out += fmt::format("ram tier: {} experts resident, {} of budget {} (peak {}), {} evictions\n", s.resident_experts,
                     format_bytes(s.resident_bytes), format_bytes(s.budget_bytes), format_bytes(s.peak_resident_bytes),
                     s.evictions);
  return out;
}

}  // namespace moe
