// The server's metrics and their Prometheus text (exposition format 0.0.4, `moe_` prefix,
// HELP and TYPE for every family). Request counts and latency histograms are recorded here by
// the handlers (any thread); token totals, queue, KV, prefix cache and routing come from the
// scheduler's stats, tier and prefetch figures from the session's, both read when /metrics is
// scraped.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "serve/scheduler/scheduler.h"
#include "session/session_stats.h"

namespace moe::serve::http {

// A Prometheus histogram: fixed upper bounds, thread-safe observe().
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);  // increasing; +Inf is implicit
  void observe(double v);
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // [bounds.size() + 1]: <= each bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex m_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last: above every bound
  double sum_ = 0;
};

// Writes the text format: a family's HELP and TYPE once, then its samples.
class PromWriter {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help);
  // labels: {{"layer", "3"}, ...}; values escaped here.
  void sample(std::string_view name, double value, const std::vector<std::pair<std::string, std::string>>& labels = {});
  void histogram(std::string_view name, std::string_view help, const Histogram::Snapshot& h);
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

std::string prom_escape_label(std::string_view v);  // \\, \" and \n escaped
std::string prom_number(double v);                   // integers exact, +Inf/-Inf/NaN spelled out

struct ServerInfo {
  std::string model, backend;
  int64_t context = 0;
  int parallel = 0;
  // What one engine step reads at least: the dense weights once, plus each expert it routes to
  // once (expert_bytes on average); with moe_expert_reads_total and moe_engine_steps_total this
  // gives the bytes a run read, the numerator of its bandwidth bound.
  double dense_bytes = 0, expert_bytes = 0;
};

class Metrics {
 public:
  Metrics();
  // One finished HTTP request: endpoint ("/v1/chat/completions") and status.
  void request(const std::string& endpoint, int status);
  void finish_reason(const std::string& reason);
  void time_to_first_token(double seconds) { ttft_.observe(seconds); }
  void inter_token_latency(double seconds) { itl_.observe(seconds); }
  void request_duration(double seconds) { e2e_.observe(seconds); }
  void disconnect() { disconnects_.fetch_add(1, std::memory_order_relaxed); }
  // A constrained request ("json_schema", "tool_calls", ...) and its grammar: compiled now
  // (`seconds`) or found in the cache.
  void constrained(const std::string& kind, bool compiled, double seconds);

  // The whole exposition. `session` may be null (not read, e.g. in tests).
  std::string render(const ServerInfo& info, const SchedulerStats& sched, const SessionStats* session) const;

 private:
  mutable std::mutex m_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, uint64_t> finishes_;
  std::map<std::string, uint64_t> constrained_;
  uint64_t grammar_compiles_ = 0, grammar_hits_ = 0;
  double grammar_compile_seconds_ = 0;
  Histogram ttft_, itl_, e2e_;
  std::atomic<uint64_t> disconnects_{0};
};

}  // namespace moe::serve::http
