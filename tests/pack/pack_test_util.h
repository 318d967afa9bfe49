// Helpers of the pack tests: running the moe binary, temp dirs, byte surgery on files.
#pragma once
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "cli/moe_cli.h"

namespace moe::test {

// A directory per test process and tag, removed when the process exits.
inline std::filesystem::path pack_tmp(const std::string& tag) {
  struct Dirs {
    std::set<std::filesystem::path> made;
    ~Dirs() {
      std::error_code ec;
      for (const auto& d : made) std::filesystem::remove_all(d, ec);
    }
  };
  static Dirs dirs;
  auto d = std::filesystem::temp_directory_path() / ("moe-pack-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  dirs.made.insert(d);
  return d;
}

// What `f` throws; empty when it does not.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

inline std::vector<uint8_t> read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::filesystem::path& p, const std::vector<uint8_t>& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

}  // namespace moe::test
