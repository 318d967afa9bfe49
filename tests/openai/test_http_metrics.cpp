// serve/http/metrics: Prometheus text format 0.0.4.
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>

#include "serve/http/metrics.h"

using namespace moe::serve;
using namespace moe::serve::http;

namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST(HttpMetrics, NumbersAndLabels) {
  EXPECT_EQ(prom_number(3), "3");
  EXPECT_EQ(prom_number(0.5), "0.5");
  EXPECT_EQ(prom_number(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(prom_number(std::nan("")), "NaN");
  EXPECT_EQ(prom_escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(HttpMetrics, HistogramIsCumulative) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 5.0, 50.0}) h.observe(v);
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 3, 4, 5}));  // 0.1 falls in le="0.1"
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.sum, 55.65);
  PromWriter w;
  w.histogram("x_seconds", "help", s);
  EXPECT_EQ(w.text(),
            "# HELP x_seconds help\n# TYPE x_seconds histogram\n"
            "x_seconds_bucket{le=\"0.1\"} 2\nx_seconds_bucket{le=\"1\"} 3\nx_seconds_bucket{le=\"10\"} 4\n"
            "x_seconds_bucket{le=\"+Inf\"} 5\nx_seconds_sum 55.65\nx_seconds_count 5\n");
}

TEST(HttpMetrics, ExpositionIsWellFormed) {
  Metrics m;
  m.request("/v1/chat/completions", 200);
  m.request("/v1/chat/completions", 200);
  m.request("/v1/chat/completions", 400);
  m.finish_reason("stop");
  m.time_to_first_token(0.03);
  m.inter_token_latency(0.004);
  m.request_duration(1.2);
  SchedulerStats s;
  s.prompt_tokens = 100;
  s.cached_tokens = 25;
  s.generated_tokens = 40;
  s.queued = 2;
  s.running = 1;
  s.expert_tokens = {{3, 4}, {5, 6}};
  s.router_entropy = {1.5, 0.25};
  moe::SessionStats ss;
  ss.backend = "cpu";
  ss.ram = moe::TierStats{};
  ss.ram->total.hits = 3;
  ss.ram->total.misses = 1;
  const std::string text = m.render({"tiny \"moe\"", "cpu", 1024, 4}, s, &ss);
  std::map<std::string, std::string> type_of;  // family -> type
  std::map<std::string, int> help_count;
  for (const std::string& l : lines(text)) {
    ASSERT_FALSE(l.empty());
    if (l.rfind("# HELP ", 0) == 0) {
      ++help_count[l.substr(7, l.find(' ', 7) - 7)];
      continue;
    }
    if (l.rfind("# TYPE ", 0) == 0) {
      const std::string name = l.substr(7, l.find(' ', 7) - 7);
      EXPECT_FALSE(type_of.count(name)) << "TYPE twice: " << name;
      type_of[name] = l.substr(l.rfind(' ') + 1);
      EXPECT_TRUE(type_of[name] == "counter" || type_of[name] == "gauge" || type_of[name] == "histogram") << l;
      continue;
    }
    ASSERT_NE(l[0], '#') << l;
    // A sample: its family has a TYPE above it.
    std::string name = l.substr(0, l.find_first_of("{ "));
    EXPECT_EQ(name.rfind("moe_", 0), 0u) << l;
    std::string fam = name;
    for (const char* suf : {"_bucket", "_sum", "_count"})
      if (!type_of.count(fam) && fam.size() > strlen(suf) && fam.substr(fam.size() - strlen(suf)) == suf)
        fam = fam.substr(0, fam.size() - strlen(suf));
    EXPECT_TRUE(type_of.count(fam)) << "no TYPE before " << l;
    EXPECT_EQ(help_count[fam], 1) << fam;
  }
  EXPECT_NE(text.find("moe_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("moe_requests_total{endpoint=\"/v1/chat/completions\",status=\"400\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("moe_info{model=\"tiny \\\"moe\\\"\",backend=\"cpu\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("moe_expert_tokens_total{layer=\"1\",expert=\"0\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("moe_router_entropy_nats{layer=\"0\"} 1.5\n"), std::string::npos);
  EXPECT_NE(text.find("moe_prefix_cache_cached_token_ratio 0.25\n"), std::string::npos);
  EXPECT_NE(text.find("moe_queue_depth 2\n"), std::string::npos);
  EXPECT_NE(text.find("moe_ram_tier_hit_rate 0.75\n"), std::string::npos);
  EXPECT_NE(text.find("moe_time_to_first_token_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("moe_time_to_first_token_seconds_count 1\n"), std::string::npos);
  EXPECT_EQ(type_of["moe_time_to_first_token_seconds"], "histogram");
  EXPECT_EQ(type_of["moe_generation_tokens_total"], "counter");
  // Without a session: no tier families.
  EXPECT_EQ(m.render({"m", "cpu", 1, 1}, s, nullptr).find("moe_ram_tier"), std::string::npos);
}
