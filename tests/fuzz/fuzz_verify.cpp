// libFuzzer target: what `moe verify` does to a pack (storage/pack_file.h): open it, checksum
// the dense region, and check every record (zstd frames decoded, in bounded memory, to their
// stated size), on any bytes. Fuzz builds accept any checksum, so mutations reach the decoder
// and crafted sizes reach every allocation. Small records are also decoded as the engine does.
#include <cstdint>
#include <exception>
#include <vector>

#include "tests/fuzz/fuzz_temp_file.h"
#include "storage/pack_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const moe::PackFile pack(fuzz_input_file(data, size, ".moepack"));
    pack.verify_dense();
    std::vector<uint8_t> raw;
    for (int l = 0; l < pack.n_layers(); ++l)
      for (int e = 0; e < pack.n_experts(l); ++e) {
        pack.verify_decode(l, e);
        const moe::ExpertRecordRef& r = pack.record(l, e);
        if (r.raw_bytes > (uint64_t(1) << 22)) continue;  // keep memory bounded
        raw.assign(r.raw_bytes, 0);
        pack.decode(l, e, pack.stored(l, e), raw.data(), true);
        (void)pack.views(l, e, raw.data());
      }
  } catch (const std::exception&) {
  }
  return 0;
}
