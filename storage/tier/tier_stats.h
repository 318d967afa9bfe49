// Counters of the RAM tier, per layer and total, for `--stats` and `moe bench --json`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe {

struct TierLayerStats {
  uint64_t hits = 0;        // acquires served from RAM (including waits on another thread's load)
  uint64_t misses = 0;      // acquires that read the expert from disk (demand misses)
  uint64_t bytes_read = 0;  // disk bytes of those misses (padded_bytes each)
  uint64_t stall_ns = 0;    // time acquires spent waiting for I/O
  uint64_t prefetches = 0, prefetch_bytes = 0;  // loads no acquire asked for (not in bytes_read)
  uint64_t prefetch_used = 0;    // prefetched experts later acquired (a miss avoided)
  uint64_t prefetch_wasted = 0, prefetch_wasted_bytes = 0;  // prefetched experts evicted unused
  uint64_t acquires() const { return hits + misses; }
  uint64_t disk_bytes() const { return bytes_read + prefetch_bytes; }  // everything read from disk
  double hit_rate() const { return acquires() ? double(hits) / double(acquires()) : 0.0; }
  // Prefetched and used / prefetched.
  double prefetch_precision() const { return prefetches ? double(prefetch_used) / double(prefetches) : 0.0; }
  // Of the acquires the cache did not already hold from earlier use (a prefetched expert, or
  // a miss), the share prefetch had resident or in flight: what prediction contributed.
  double prefetch_recall() const {
    return prefetch_used + misses ? double(prefetch_used) / double(prefetch_used + misses) : 0.0;
  }
  void add(const TierLayerStats& o) {
    hits += o.hits, misses += o.misses, bytes_read += o.bytes_read, stall_ns += o.stall_ns;
    prefetches += o.prefetches, prefetch_bytes += o.prefetch_bytes;
    prefetch_used += o.prefetch_used, prefetch_wasted += o.prefetch_wasted, prefetch_wasted_bytes += o.prefetch_wasted_bytes;
  }
};

struct TierStats {
  std::vector<TierLayerStats> layers;  // [n_layers]; dense layers stay zero
  TierLayerStats total;                // sum over layers
  uint64_t evictions = 0;
  uint64_t inflight_waits = 0;          // hits that waited for a load already in flight
  uint64_t checksum_verifications = 0;  // records verified (once each per process)
  uint64_t resident_bytes = 0, peak_resident_bytes = 0;    // buffers held by experts
  uint64_t allocated_bytes = 0, peak_allocated_bytes = 0;  // plus kept free buffers: RSS of the tier
  uint64_t staging_bytes = 0;  // read buffers of compressed records (outside the budget, reused)
  uint64_t budget_bytes = 0;
  uint64_t resident_experts = 0;
};

// {"ram_hit_rate", "disk_bytes_per_token" (demand misses + prefetches), "miss_bytes_per_token"
//  (demand misses only), "stall_ms_per_token", "hits", "misses", "disk_bytes", "stall_ms",
//  "evictions", "resident_bytes", "peak_resident_bytes", "budget_bytes", ...,
//  "layers": {"ram_hit_rate": [...], "disk_bytes_per_token": [...], "stall_ms_per_token": [...],
//             "hits": [...], "misses": [...]}}. `tokens` divides the per-token figures (0: they
// are 0).
nlohmann::json tier_stats_json(const TierStats& s, uint64_t tokens);
// A few human-readable lines for `--stats`.
std::string format_tier_stats(const TierStats& s, uint64_t tokens);

}  // namespace moe
