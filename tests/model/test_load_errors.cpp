// Broken checkpoints give one-line errors that name the file, the tensor and what was expected.
#include <gtest/gtest.h>

#include <fstream>

#include "model/fixtures.h"
#include "runtime/model.h"

using namespace moe;
using namespace moe::test;

namespace {

std::string load_error(const std::filesystem::path& dir) {
  try {
    load_hf_model(dir);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}
void write(const std::filesystem::path& p, const std::string& s) { std::ofstream(p) << s; }

// First single-file fixture (so the test can truncate "model.safetensors").
std::string single_file_fixture() {
  for (const auto& n : fixture_names())
    if (std::filesystem::exists(fixture_dir(n) / "model.safetensors")) return n;
  return {};
}

}  // namespace

TEST(LoadErrors, TruncatedSafetensors) {
  const std::string name = single_file_fixture();
  ASSERT_FALSE(name.empty());
  const auto d = copy_fixture(name, "trunc");
  const auto f = d / "model.safetensors";
  std::filesystem::resize_file(f, std::filesystem::file_size(f) - 1000);
  const std::string e = load_error(d);
  EXPECT_NE(e.find(f.string() + ": not a valid safetensors file: tensor '"), std::string::npos) << e;
  EXPECT_NE(e.find("(file truncated?)"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
  std::filesystem::remove_all(d);
}

TEST(LoadErrors, UnknownArchitecture) {
  const auto d = copy_fixture(fixture_names().at(0), "arch");
  std::string cfg = read(d / "config.json");
  const auto p = cfg.find("ForCausalLM");
  ASSERT_NE(p, std::string::npos);
  const auto q = cfg.rfind('"', p);
  cfg.replace(q + 1, p - q - 1, "Llama");
  write(d / "config.json", cfg);
  const std::string e = load_error(d);
  EXPECT_NE(e.find("config.json: architecture 'LlamaForCausalLM' is not supported; supported: "), std::string::npos) << e;
  std::filesystem::remove_all(d);
}

TEST(LoadErrors, MissingTensor) {
  const std::string name = single_file_fixture();
  const auto d = copy_fixture(name, "missing");
  // Rename a tensor in the header in place (same length) so the file stays consistent.
  const auto f = d / "model.safetensors";
  std::string bytes = read(f);
  const std::string key = "model.norm.weight";
  const auto at = bytes.find('"' + key + '"');
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at + 1, key.size(), "model.norX.weight");
  std::ofstream(f, std::ios::binary) << bytes;
  const std::string e = load_error(d);
  EXPECT_NE(e.find("tensor 'model.norm.weight' is missing (expected shape ["), std::string::npos) << e;
  std::filesystem::remove_all(d);
}

TEST(LoadErrors, WrongShapeFromConfig) {
  const auto d = copy_fixture(fixture_names().at(0), "shape");
  std::string cfg = read(d / "config.json");
  const auto p = cfg.find("\"hidden_size\"");
  ASSERT_NE(p, std::string::npos);
  const auto colon = cfg.find(':', p), end = cfg.find_first_of(",}", colon);
  cfg.replace(colon + 1, end - colon - 1, " 48");
  write(d / "config.json", cfg);
  const std::string e = load_error(d);
  EXPECT_NE(e.find("has shape ["), std::string::npos) << e;
  EXPECT_NE(e.find("from config.json"), std::string::npos) << e;
  std::filesystem::remove_all(d);
}
