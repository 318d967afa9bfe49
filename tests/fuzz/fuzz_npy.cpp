// libFuzzer target: the .npy reader (storage/npy.h) on any bytes. Crafted shapes must give an
// error, never an overflow or an allocation the file does not back.
#include <cstdint>
#include <exception>

#include "tests/fuzz/fuzz_temp_file.h"
#include "storage/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const moe::NpyArray a = moe::read_npy_f32(fuzz_input_file(data, size, ".npy"));
    size_t n = 1;
    for (int64_t d : a.shape) n *= size_t(d);
    if (n != a.data.size()) std::abort();  // the shape must describe the data returned
  } catch (const std::exception&) {
  }
  return 0;
}
