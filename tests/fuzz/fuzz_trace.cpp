// libFuzzer target: the routing-trace reader (prefetch/trace.h) on any bytes as a JSONL file.
// Whatever it accepts must fit its header (checked again here with the writer's own checks).
#include <cstdint>
#include <exception>

#include "tests/fuzz/fuzz_temp_file.h"
#include "prefetch/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::Trace t;
  try {
    t = moe::read_trace(fuzz_input_file(data, size, ".jsonl"));
  } catch (const std::exception&) {
    return 0;
  }
  for (const auto& r : t.records)
    for (int32_t id : r.experts)
      if (id < 0 || id >= t.header.n_experts.at(size_t(r.layer))) std::abort();
  return 0;
}
