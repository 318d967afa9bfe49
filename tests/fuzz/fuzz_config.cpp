// libFuzzer target: parse_model_config_text on any bytes (config.json of a model directory or
// a pack). Bad input must end in std::exception with a message; anything else (another
// exception type, a crash, a sanitizer report) is a bug. What it accepts must be usable: the
// RoPE frequencies it implies are computed and must be finite.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "runtime/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const moe::ModelConfig c =
        moe::parse_model_config_text(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
    for (float f : moe::rope_inv_freq(c.rope, c.head_dim))
      if (!std::isfinite(f)) std::abort();
  } catch (const std::exception&) {
  }
  return 0;
}
