// Fuzz helper: the readers under test take a path, so each input is written to one file per
// process (rewritten for every input).
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

inline const std::filesystem::path& fuzz_input_file(const uint8_t* data, size_t size, const char* ext) {
  static const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("moe-fuzz-" + std::to_string(::getpid()) + ext);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}
