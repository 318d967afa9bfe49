#include "serve/http/metrics.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace moe::serve::http {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;  // Prometheus buckets are `le`: v <= bound
  std::lock_guard lk(m_);
  ++counts_[i];
  sum_ += v;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard lk(m_);
  uint64_t run = 0;
  for (const uint64_t c : counts_) s.cumulative.push_back(run += c);
  s.count = run;
  s.sum = sum_;
  return s;
}

std::string prom_escape_label(std::string_view v) {
  std::string o;
  o.reserve(v.size());
  for (const char c : v) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

std::string prom_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  if (v == std::floor(v) && std::fabs(v) < 9.0e15) {
    std::snprintf(buf, sizeof buf, "%lld", (long long)v);
    return buf;
  }
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back as v
  return std::string(buf, r.ptr);
}

void PromWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  for (const char c : help) out_ += c == '\n' ? ' ' : c;  // HELP escapes \\ and \n; ours have neither
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void PromWriter::sample(std::string_view name, double value, const std::vector<std::pair<std::string, std::string>>& labels) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) out_ += ',';
      out_ += labels[i].first + "=\"" + prom_escape_label(labels[i].second) + '"';
    }
    out_ += '}';
  }
  out_ += ' ';
  out_ += prom_number(value);
  out_ += '\n';
}

void PromWriter::histogram(std::string_view name, std::string_view help, const Histogram::Snapshot& h) {
  family(name, "histogram", help);
  const std::string n(name);
  for (size_t i = 0; i < h.bounds.size(); ++i) sample(n + "_bucket", double(h.cumulative[i]), {{"le", prom_number(h.bounds[i])}});
  sample(n + "_bucket", double(h.count), {{"le", "+Inf"}});
  sample(n + "_sum", h.sum);
  sample(n + "_count", double(h.count));
}

namespace {

// Seconds: 1 ms .. 60 s for the first token (prefill of long prompts), 1 ms .. 2.5 s between tokens.
std::vector<double> ttft_buckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 60};
}
std::vector<double> itl_buckets() {
  return {0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5};
}
std::vector<double> e2e_buckets() { return {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960}; }

}  // namespace

Metrics::Metrics() : ttft_(ttft_buckets()), itl_(itl_buckets()), e2e_(e2e_buckets()) {}

void Metrics::request(const std::string& endpoint, int status) {
  std::lock_guard lk(m_);
  ++requests_[{endpoint, status}];
}

void Metrics::finish_reason(const std::string& reason) {
  std::lock_guard lk(m_);
  ++finishes_[reason];
}

void Metrics::constrained(const std::string& kind, bool compiled, double seconds) {
  std::lock_guard lk(m_);
  ++constrained_[kind];
  if (compiled) {
    ++grammar_compiles_;
    grammar_compile_seconds_ += seconds;
  } else {
    ++grammar_hits_;
  }
}

std::string Metrics::render(const ServerInfo& info, const SchedulerStats& s, const SessionStats* ss) const {
  PromWriter w;
  using L = std::vector<std::pair<std::string, std::string>>;
  w.family("moe_info", "gauge", "The served model and engine (value 1).");
  w.sample("moe_info", 1, {{"model", info.model}, {"backend", info.backend}});
  w.family("moe_context_tokens", "gauge", "Tokens per sequence (prompt + completion).");
  w.sample("moe_context_tokens", double(info.context));
  w.family("moe_parallel_sequences", "gauge", "Sequences that may run at once (--parallel).");
  w.sample("moe_parallel_sequences", info.parallel);
  {
    std::lock_guard lk(m_);
    w.family("moe_requests_total", "counter", "HTTP requests answered, by endpoint and status.");
    for (const auto& [k, n] : requests_) w.sample("moe_requests_total", double(n), {{"endpoint", k.first}, {"status", std::to_string(k.second)}});
    w.family("moe_request_finish_total", "counter", "Generations finished, by finish reason.");
    for (const auto& [k, n] : finishes_) w.sample("moe_request_finish_total", double(n), {{"reason", k}});
    w.family("moe_constrained_requests_total", "counter", "Requests whose output a grammar enforced, by kind.");
    for (const auto& [k, n] : constrained_) w.sample("moe_constrained_requests_total", double(n), {{"kind", k}});
    w.family("moe_grammar_compiles_total", "counter", "Grammars compiled over the vocabulary (cache misses).");
    w.sample("moe_grammar_compiles_total", double(grammar_compiles_));
    w.family("moe_grammar_cache_hits_total", "counter", "Constrained requests whose grammar was already compiled.");
    w.sample("moe_grammar_cache_hits_total", double(grammar_hits_));
    w.family("moe_grammar_compile_seconds_total", "counter", "Time spent compiling grammars.");
    w.sample("moe_grammar_compile_seconds_total", grammar_compile_seconds_);
  }
  w.family("moe_client_disconnects_total", "counter", "Requests cancelled because the client went away.");
  w.sample("moe_client_disconnects_total", double(disconnects_.load(std::memory_order_relaxed)));
  w.histogram("moe_time_to_first_token_seconds", "From the request's arrival to its first generated token.", ttft_.snapshot());
  w.histogram("moe_inter_token_latency_seconds", "Between a request's consecutive streamed outputs.", itl_.snapshot());
  w.histogram("moe_request_duration_seconds", "From a generation request's arrival to its last token.", e2e_.snapshot());

  w.family("moe_prompt_tokens_total", "counter", "Prompt tokens of finished and running requests.");
  w.sample("moe_prompt_tokens_total", double(s.prompt_tokens));
  w.family("moe_generation_tokens_total", "counter", "Tokens generated.");
  w.sample("moe_generation_tokens_total", double(s.generated_tokens));
  w.family("moe_cached_prompt_tokens_total", "counter", "Prompt tokens whose KV came from the prefix cache.");
  w.sample("moe_cached_prompt_tokens_total", double(s.cached_tokens));
  w.family("moe_queue_depth", "gauge", "Requests waiting for a sequence slot.");
  w.sample("moe_queue_depth", double(s.queued));
  w.family("moe_running_sequences", "gauge", "Requests being prefilled or decoded.");
  w.sample("moe_running_sequences", double(s.running));
  w.family("moe_engine_steps_total", "counter", "Batched engine steps run.");
  w.sample("moe_engine_steps_total", double(s.steps));
  w.family("moe_expert_reads_total", "counter", "Experts the engine steps needed: each (layer, expert) once per step however many tokens chose it.");
  w.sample("moe_expert_reads_total", double(s.expert_reads));
  w.family("moe_dense_weight_bytes", "gauge", "Bytes of the non-expert weights one step reads.");
  w.sample("moe_dense_weight_bytes", info.dense_bytes);
  w.family("moe_expert_weight_bytes", "gauge", "Bytes of one routed expert (the average).");
  w.sample("moe_expert_weight_bytes", info.expert_bytes);
  w.family("moe_engine_busy_seconds_total", "counter", "Time spent inside engine steps.");
  w.sample("moe_engine_busy_seconds_total", s.busy_seconds);
  w.family("moe_kv_cache_bytes", "gauge", "KV cache bytes held by running and cached sequences.");
  w.sample("moe_kv_cache_bytes", double(s.kv_bytes));
  w.family("moe_kv_reserved_bytes", "gauge", "KV the running requests reserved (admission control, --kv-budget).");
  w.sample("moe_kv_reserved_bytes", double(s.kv_reserved_bytes));
  w.family("moe_kv_budget_waits_total", "counter", "Steps at which a queued request waited for KV budget.");
  w.sample("moe_kv_budget_waits_total", double(s.memory_waits));
  w.family("moe_prefix_cache_bytes", "gauge", "KV bytes kept by the prefix cache.");
  w.sample("moe_prefix_cache_bytes", double(s.prefix_cache_bytes));
  w.family("moe_prefix_cache_entries", "gauge", "Cached prefixes.");
  w.sample("moe_prefix_cache_entries", double(s.prefix_cache_entries));
  w.family("moe_prefix_cache_hits_total", "counter", "Requests that reused a cached prefix.");
  w.sample("moe_prefix_cache_hits_total", double(s.prefix_cache_hits));
  w.family("moe_prefix_running_shares_total", "counter", "Requests that reused a running request's prompt prefix.");
  w.sample("moe_prefix_running_shares_total", double(s.running_shares));
  w.family("moe_prefix_cache_lookups_total", "counter", "Prefix cache lookups.");
  w.sample("moe_prefix_cache_lookups_total", double(s.prefix_cache_lookups));
  w.family("moe_prefix_cache_evictions_total", "counter", "Cached prefixes evicted.");
  w.sample("moe_prefix_cache_evictions_total", double(s.prefix_cache_evictions));
  w.family("moe_prefix_cache_cached_token_ratio", "gauge", "Cached prompt tokens / prompt tokens, since start.");
  w.sample("moe_prefix_cache_cached_token_ratio", s.prompt_tokens ? double(s.cached_tokens) / double(s.prompt_tokens) : 0.0);

  // Routing: the scheduler's counts, else the session's prefetch report.
  const auto& experts = !s.expert_tokens.empty() || !ss ? s.expert_tokens : ss->prefetch.expert_tokens;
  const auto& entropy = !s.router_entropy.empty() || !ss ? s.router_entropy : ss->prefetch.router_entropy;
  w.family("moe_expert_tokens_total", "counter", "Tokens routed to each expert, per MoE layer.");
  for (size_t l = 0; l < experts.size(); ++l)
    for (size_t e = 0; e < experts[l].size(); ++e)
      w.sample("moe_expert_tokens_total", double(experts[l][e]), L{{"layer", std::to_string(l)}, {"expert", std::to_string(e)}});
  w.family("moe_router_entropy_nats", "gauge", "Entropy of expert usage per layer (nats; 0 for dense layers).");
  for (size_t l = 0; l < entropy.size(); ++l) w.sample("moe_router_entropy_nats", entropy[l], L{{"layer", std::to_string(l)}});

  if (!ss) return w.text();
  if (ss->ram) {
    const TierLayerStats& t = ss->ram->total;
    w.family("moe_ram_tier_hits_total", "counter", "Expert acquires served from the RAM tier.");
    w.sample("moe_ram_tier_hits_total", double(t.hits));
    w.family("moe_ram_tier_misses_total", "counter", "Expert acquires read from disk.");
    w.sample("moe_ram_tier_misses_total", double(t.misses));
    w.family("moe_ram_tier_hit_rate", "gauge", "RAM tier hits / acquires, since start.");
    w.sample("moe_ram_tier_hit_rate", t.hit_rate());
    w.family("moe_ram_tier_stall_seconds_total", "counter", "Time expert acquires waited for disk reads.");
    w.sample("moe_ram_tier_stall_seconds_total", double(t.stall_ns) * 1e-9);
    w.family("moe_ram_tier_disk_bytes_total", "counter", "Bytes read from disk (misses and prefetches).");
    w.sample("moe_ram_tier_disk_bytes_total", double(t.disk_bytes()));
    w.family("moe_ram_tier_resident_bytes", "gauge", "Expert bytes resident in RAM.");
    w.sample("moe_ram_tier_resident_bytes", double(ss->ram->resident_bytes));
    w.family("moe_ram_tier_budget_bytes", "gauge", "RAM tier budget.");
    w.sample("moe_ram_tier_budget_bytes", double(ss->ram->budget_bytes));
    w.family("moe_ram_tier_evictions_total", "counter", "Experts evicted from RAM.");
    w.sample("moe_ram_tier_evictions_total", double(ss->ram->evictions));
    w.family("moe_prefetch_precision", "gauge", "Prefetched experts later used / prefetched (RAM tier).");
    w.sample("moe_prefetch_precision", t.prefetch_precision());
    w.family("moe_prefetch_recall", "gauge", "Acquires prefetch had resident or in flight / acquires not cached before (RAM tier).");
    w.sample("moe_prefetch_recall", t.prefetch_recall());
  }
  const PrefetchReport& p = ss->prefetch;
  w.family("moe_prefetch_issued_total", "counter", "Expert prefetches issued.");
  w.sample("moe_prefetch_issued_total", double(p.issued), {{"mode", p.mode}});
  w.family("moe_prefetch_recall_at_k", "gauge", "Share of the routed experts the predictor named, per lookahead distance.");
  for (const auto& r : p.recall) w.sample("moe_prefetch_recall_at_k", r.at_k, {{"distance", std::to_string(r.distance)}});
  if (ss->gpu && ss->gpu->vram) {
    const VramReport& v = *ss->gpu->vram;
    const uint64_t acq = v.hits + v.misses;
    w.family("moe_vram_hits_total", "counter", "Expert uses served from VRAM slots.");
    w.sample("moe_vram_hits_total", double(v.hits));
    w.family("moe_vram_misses_total", "counter", "Expert uses copied to VRAM on demand.");
    w.sample("moe_vram_misses_total", double(v.misses));
    w.family("moe_vram_hit_rate", "gauge", "VRAM hits / uses, since start.");
    w.sample("moe_vram_hit_rate", acq ? double(v.hits) / double(acq) : 0.0);
    w.family("moe_vram_bytes_copied_total", "counter", "Bytes copied host -> VRAM slots.");
    w.sample("moe_vram_bytes_copied_total", double(v.bytes_copied));
    w.family("moe_vram_prefetch_precision", "gauge", "Prefetched VRAM copies used / prefetched.");
    w.sample("moe_vram_prefetch_precision", v.prefetch_copies ? double(v.prefetch_used) / double(v.prefetch_copies) : 0.0);
    w.family("moe_vram_budget_bytes", "gauge", "VRAM budget for expert slots.");
    w.sample("moe_vram_budget_bytes", double(v.budget_bytes));
  }
  if (ss->gpu) {
    w.family("moe_gpu_sync_seconds_total", "counter", "Time waiting for the device at router read-backs.");
    w.sample("moe_gpu_sync_seconds_total", ss->gpu->times.sync_s);
    w.family("moe_gpu_acquire_seconds_total", "counter", "Time acquiring experts for the device (stalls).");
    w.sample("moe_gpu_acquire_seconds_total", ss->gpu->times.acquire_s);
  }
  return w.text();
}

}  // namespace moe::serve::http
