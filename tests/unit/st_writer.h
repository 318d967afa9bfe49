// Test helper: writes small safetensors files (optionally broken on purpose).
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe::test {

struct StTensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

inline std::string safetensors_bytes(const std::vector<StTensor>& ts) {
  nlohmann::json h = nlohmann::json::object();
  uint64_t off = 0;
  std::string data;
  for (const auto& t : ts) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
    data.append(t.bytes.begin(), t.bytes.end());
    off += t.bytes.size();
  }
  std::string hs = h.dump();
  while (hs.size() % 8) hs.push_back(' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((uint64_t(hs.size()) >> (8 * i)) & 0xff);
  return out + hs + data;
}

inline void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

inline StTensor f32_tensor(const std::string& name, std::vector<int64_t> shape, float start = 0.0f) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  StTensor t{name, "F32", shape, std::vector<uint8_t>(size_t(n) * 4)};
  for (int64_t i = 0; i < n; ++i) {
    const float v = start + float(i);
    std::memcpy(&t.bytes[size_t(i) * 4], &v, 4);
  }
  return t;
}

// A fresh empty directory under the system temp dir, unique per test.
inline std::filesystem::path temp_dir(const std::string& tag) {
  auto d = std::filesystem::temp_directory_path() / ("moe-test-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace moe::test
