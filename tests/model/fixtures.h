// The committed HF fixtures (tests/fixtures/<name>/) and their golden outputs, written by
// training/make_fixtures.py from HF transformers.
#pragma once
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe::test {

std::filesystem::path fixtures_root();
// Directory of a named model with golden outputs: tests/fixtures/<name> (random-weight
// fixtures) or models/<name> (models the project ships).
std::filesystem::path fixture_dir(const std::string& name);
// Names of fixture and shipped-model directories that hold golden/golden.json, sorted.
std::vector<std::string> fixture_names();
nlohmann::json golden(const std::string& name);
// A GoogleTest parameter name for a fixture ("tiny-moe" -> "tiny_moe").
struct FixtureTestName {
  template <class Info>
  std::string operator()(const Info& info) const {
    std::string s = info.param;
    for (char& c : s)
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return s;
  }
};
// Max |a - b| over max |b|: the error relative to the reference logit scale.
double rel_max_err(const std::vector<float>& a, const std::vector<float>& b);
// n token ids in [0, vocab) from a fixed LCG: the same seed, the same prompt, on any machine.
inline std::vector<int32_t> test_tokens(int64_t n, int64_t vocab, uint32_t seed) {
  std::vector<int32_t> t;
  uint32_t s = seed;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    t.push_back(int32_t((s >> 8) % uint32_t(vocab)));
  }
  return t;
}
// Copies a fixture directory to a fresh temp dir (for tests that corrupt it).
std::filesystem::path copy_fixture(const std::string& name, const std::string& tag);

}  // namespace moe::test
