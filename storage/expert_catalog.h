// Where each expert's record lies in a file and how to turn its bytes into weights.
// A pack file implements this; the storage tiers (readers, RAM cache) only need this
// interface, so they are tested with fakes.
#pragma once
#include <cstdint>
#include <filesystem>

#include "storage/expert_source.h"

namespace moe {

struct ExpertRecordRef {
  uint64_t offset = 0;        // byte offset in the file, 4 KiB aligned
  uint64_t stored_bytes = 0;  // bytes on disk (compressed size when compressed)
  uint64_t padded_bytes = 0;  // stored_bytes rounded up to 4 KiB: what one O_DIRECT read fetches
  uint64_t raw_bytes = 0;     // bytes after decoding (== stored_bytes when not compressed)
  uint64_t checksum = 0;      // xxh64 of the stored bytes
  bool compressed = false;    // zstd frame
};

class ExpertCatalog {
 public:
  virtual ~ExpertCatalog() = default;
  virtual const std::filesystem::path& path() const = 0;
  virtual int n_layers() const = 0;
  virtual int n_experts(int layer) const = 0;  // 0 for dense layers
  virtual const ExpertRecordRef& record(int layer, int expert) const = 0;
  // Verifies the checksum of `stored` (record(layer, expert).stored_bytes bytes) when `verify`,
  // and decodes it into `raw` (raw_bytes). Throws std::runtime_error naming the file, layer and
  // expert on a mismatch or a corrupt frame.
  virtual void decode(int layer, int expert, const uint8_t* stored, uint8_t* raw, bool verify) const = 0;
  // Views of the expert's matrices inside a decoded record (valid while `raw` lives).
  virtual ExpertWeights views(int layer, int expert, const uint8_t* raw) const = 0;
};

}  // namespace moe
