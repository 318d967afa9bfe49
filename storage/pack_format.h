// The .moepack on-disk format, version 1: constants, the binary header and table entries,
// and the parser of a pack's metadata (header, JSON manifest, tensor table). Everything is
// little-endian; docs/pack-format.md is the specification a reader can be written from.
//
//   [0, 4096)          header page: a 128-byte header, zero padded
//   dense region       every non-expert tensor, each part 64-byte aligned (4 KiB aligned start)
//   expert region      one record per routed expert, each 4 KiB aligned and zero padded to 4 KiB
//   manifest           UTF-8 JSON (architecture, embedded config/tokenizer files, quantization, NMSE)
//   table              dense entries, expert-layer layouts, expert records (fixed-size, binary)
//
// Manifest and table come last so a converter writes the file front to back in one pass and
// only seeks back to fill in the header.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "quant/weight_view.h"

namespace moe::pack {

inline constexpr char kMagic[8] = {'M', 'O', 'E', 'P', 'A', 'C', 'K', '\0'};
// Bumped on any change an old reader would misread; additions to the JSON manifest that a
// reader may ignore keep the version.
inline constexpr uint32_t kVersion = 1;
inline constexpr uint32_t kEndianCheck = 0x01020304;  // reads as 0x04030201 on a byte-swapped file
inline constexpr uint64_t kHeaderBytes = 128;
inline constexpr uint64_t kPage = 4096;         // expert record alignment (O_DIRECT)
inline constexpr uint64_t kPartAlign = 64;      // alignment of every matrix part (SIMD loads)
inline constexpr size_t kNameBytes = 64;        // dense tensor name field, NUL padded
inline constexpr uint64_t kDenseEntryBytes = 128;
inline constexpr uint64_t kMatrixLayoutBytes = 48;
inline constexpr uint64_t kLayerLayoutBytes = 16 + 3 * kMatrixLayoutBytes;
inline constexpr uint64_t kRecordEntryBytes = 48;
inline constexpr uint32_t kFlagZstd = 1;

inline constexpr uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

struct Header {
  uint32_t version = kVersion;
  uint32_t endian = kEndianCheck;
  uint64_t file_bytes = 0;
  uint64_t manifest_offset = 0, manifest_bytes = 0, manifest_xxh64 = 0;
  uint64_t table_offset = 0, table_bytes = 0, table_xxh64 = 0;
  uint64_t dense_offset = 0, dense_bytes = 0, dense_xxh64 = 0;
  uint32_t n_dense = 0;        // dense tensor entries
  uint32_t n_expert_layers = 0;  // layer layouts (one per MoE layer)
  uint32_t n_records = 0;      // expert records
  uint32_t n_layers = 0;       // decoder layers of the model
  uint64_t header_xxh64 = 0;   // of bytes [0, 120)
};

// Where a matrix's parts lie relative to a base (the dense region, or a decoded expert record).
struct MatrixLayout {
  DType dtype = DType::F32;
  int32_t group = 0;
  int64_t rows = 0, cols = 0;
  uint64_t data_offset = 0, scales_offset = 0, zeros_offset = 0;

  WeightView shape_view() const;  // dtype/shape/group only: to size the parts
  uint64_t end() const;           // one past the last byte of the last part
  WeightView view(const uint8_t* base) const;
};

// Lays a matrix out at `*cursor` (64-byte aligned parts) and advances the cursor.
MatrixLayout place_matrix(DType dtype, int32_t group, int64_t rows, int64_t cols, uint64_t* cursor);

struct DenseEntry {
  std::string name;
  MatrixLayout m;  // offsets relative to the dense region
  uint64_t bytes = 0;  // data + scales + zeros
};

struct LayerLayout {
  uint32_t layer = 0, n_experts = 0;
  uint64_t raw_bytes = 0;  // a decoded record
  MatrixLayout gate, up, down;  // offsets relative to the decoded record
};

struct RecordEntry {
  uint32_t layer = 0, expert = 0;
  uint64_t offset = 0;        // absolute, 4 KiB aligned
  uint64_t stored_bytes = 0;  // on disk (compressed size when zstd)
  uint64_t raw_bytes = 0;     // decoded
  uint64_t xxh64 = 0;         // of the stored bytes
  uint32_t flags = 0;         // kFlagZstd
};

// Everything but the data: what the parser validates and the reader keeps.
struct Metadata {
  Header header;
  nlohmann::json manifest;
  std::vector<DenseEntry> dense;
  std::vector<LayerLayout> layers;
  std::vector<RecordEntry> records;  // sorted by (layer, expert)
};

void encode_header(const Header& h, uint8_t out[kHeaderBytes]);  // fills header_xxh64 itself
std::vector<uint8_t> encode_table(const Metadata& m);

// Parses and validates the metadata of a whole pack image `bytes[0, size)`: magic, version,
// endianness, header/manifest/table checksums, every offset and size inside the file, every
// matrix shape consistent with its dtype. Data checksums (dense region, records) are not
// checked here. Throws std::runtime_error "NAME: ..." naming what is wrong.
Metadata parse_metadata(const uint8_t* bytes, size_t size, const std::string& name);

uint64_t xxh64(const void* p, size_t n);

}  // namespace moe::pack
