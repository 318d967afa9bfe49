// Test helpers: small routing traces built in memory, and temporary trace files.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "prefetch/trace.h"

namespace moe::test {

// `n_layers` MoE layers of `n_experts` each (plus `dense_first` dense layers in front).
inline TraceHeader make_header(int n_layers, int n_experts, int top_k, uint64_t expert_bytes = 0, int lookahead = 0,
                               int dense_first = 0) {
  TraceHeader h;
  h.model = "test-model";
  h.n_layers = n_layers + dense_first;
  h.top_k = top_k;
  h.lookahead = lookahead;
  h.predictor = lookahead ? "gate" : "none";
  for (int l = 0; l < h.n_layers; ++l) {
    h.n_experts.push_back(l < dense_first ? 0 : n_experts);
    h.expert_bytes.push_back(l < dense_first ? 0 : expert_bytes);
  }
  return h;
}

// One record; `tokens` holds each token's top_k ids, best first. Weights are 1/k, seq 0,
// positions 0..n-1.
inline TraceRecord make_record(int64_t step, int layer, const std::vector<std::vector<int32_t>>& tokens,
                               std::vector<std::vector<int32_t>> predicted = {}) {
  TraceRecord r;
  r.step = step;
  r.layer = layer;
  for (size_t t = 0; t < tokens.size(); ++t) {
    r.seq.push_back(0);
    r.pos.push_back(int32_t(t));
    for (int32_t e : tokens[t]) {
      r.experts.push_back(e);
      r.weights.push_back(1.0f / float(tokens[t].size()));
    }
  }
  r.predicted = std::move(predicted);
  return r;
}

// A reference string as a trace: one layer, top_k 1, one one-token record per step.
inline Trace reference_string(const std::vector<int32_t>& refs, int n_experts, uint64_t expert_bytes = 0) {
  Trace t{make_header(1, n_experts, 1, expert_bytes), {}};
  for (size_t s = 0; s < refs.size(); ++s) t.records.push_back(make_record(int64_t(s), 0, {{refs[s]}}));
  return t;
}

// A file under the temp directory, removed when the test ends.
struct TempFile {
  std::filesystem::path path;
  explicit TempFile(const std::string& name) {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : test)
      if (c == '/') c = '_';  // parameterized tests are named "Name/Case"
    path = std::filesystem::temp_directory_path() / ("moe-" + test + "-" + name);
  }
  ~TempFile() { std::filesystem::remove(path); }
  void write(const std::string& text) const { std::ofstream(path, std::ios::binary) << text; }
};

}  // namespace moe::test
