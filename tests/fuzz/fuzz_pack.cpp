// libFuzzer target: the pack metadata parser (header, JSON manifest, tensor table) on any
// bytes. Built with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION so checksums do not stop the
// mutations at the door. Whatever it accepts must be safe to use: every view it describes
// is touched (ASan catches a byte outside the input) and zstd records are decoded.
#include <zstd.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "storage/pack_format.h"

using namespace moe;

namespace {

volatile uint8_t sink;

void touch(const uint8_t* p, uint64_t n) {
  if (n == 0) return;
  sink = p[0];
  sink = p[n - 1];
}

void touch_matrix(const pack::MatrixLayout& m, const uint8_t* base) {
  const WeightView v = m.view(base);
  touch(static_cast<const uint8_t*>(v.data), uint64_t(v.data_bytes()));
  if (v.scales) touch(static_cast<const uint8_t*>(v.scales), uint64_t(v.scale_bytes()));
  if (v.zeros) touch(v.zeros, uint64_t(v.rows * (v.cols / v.group)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pack::Metadata m;
  try {
    m = pack::parse_metadata(data, size, "fuzz.moepack");
  } catch (const std::runtime_error&) {
    return 0;  // rejected with a message: fine
  }
  for (const auto& d : m.dense) touch_matrix(d.m, data + m.header.dense_offset);
  size_t li = 0, seen = 0;
  for (const auto& r : m.records) {
    while (seen == m.layers[li].n_experts) {  // the parser guarantees records follow the layers
      ++li;
      seen = 0;
    }
    ++seen;
    touch(data + r.offset, r.stored_bytes);
    if (r.raw_bytes > (uint64_t(1) << 22)) continue;  // keep memory bounded
    std::vector<uint8_t> raw(r.raw_bytes);
    if (r.flags & pack::kFlagZstd) {
      const size_t n = ZSTD_decompress(raw.data(), raw.size(), data + r.offset, r.stored_bytes);
      if (ZSTD_isError(n) || n != raw.size()) continue;
    } else {
      std::copy(data + r.offset, data + r.offset + r.raw_bytes, raw.begin());
    }
    const auto& L = m.layers[li];
    touch_matrix(L.gate, raw.data());
    touch_matrix(L.up, raw.data());
    touch_matrix(L.down, raw.data());
  }
  return 0;
}
