// libFuzzer target: SafetensorsFile::parse on any bytes. What it accepts must describe
// tensors inside the input: each entry's first and last byte is read (ASan checks).
#include <cstdint>
#include <stdexcept>

#include "storage/safetensors.h"

namespace {
volatile uint8_t sink;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto entries = moe::SafetensorsFile::parse(data, size, "fuzz.safetensors");
    for (const auto& [name, e] : entries)
      if (e.nbytes > 0) {
        sink = e.data[0];
        sink = e.data[e.nbytes - 1];
      }
  } catch (const std::runtime_error&) {
  }
  return 0;
}
