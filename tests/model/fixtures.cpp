#include "model/fixtures.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>

namespace moe::test {

// The source tree: $MOE_SOURCE_DIR, else the one this test was built from, else the working
// directory (a test binary carried to another machine runs from its checkout's root).
static std::filesystem::path source_root() {
  if (const char* env = std::getenv("MOE_SOURCE_DIR")) return env;
  if (std::filesystem::exists(std::filesystem::path(MOE_SOURCE_DIR) / "tests" / "fixtures")) return MOE_SOURCE_DIR;
  return std::filesystem::current_path();
}

std::filesystem::path fixtures_root() { return source_root() / "tests" / "fixtures"; }

static std::filesystem::path models_root() { return source_root() / "models"; }

std::filesystem::path fixture_dir(const std::string& name) {
  const auto f = fixtures_root() / name;
  return std::filesystem::exists(f) ? f : models_root() / name;
}

std::vector<std::string> fixture_names() {
  std::vector<std::string> out;
  for (const auto& root : {fixtures_root(), models_root()}) {
    if (!std::filesystem::exists(root)) continue;
    for (const auto& e : std::filesystem::directory_iterator(root))
      if (std::filesystem::exists(e.path() / "golden" / "golden.json")) out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

nlohmann::json golden(const std::string& name) {
  std::ifstream in(fixture_dir(name) / "golden" / "golden.json");
  return nlohmann::json::parse(in);
}

double rel_max_err(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return err / scale;
}

std::filesystem::path copy_fixture(const std::string& name, const std::string& tag) {
  auto d = std::filesystem::temp_directory_path() / ("moe-fixture-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::copy(fixture_dir(name), d, std::filesystem::copy_options::recursive);
  return d;
}

}  // namespace moe::test
