// Writes a .moepack front to back: dense tensors, then expert records in (layer, expert)
// order, then manifest and table; the header is filled in last. Output goes to a unique
// temporary (storage/output_file.h) renamed to OUT only by finish(), so an interrupted run
// never leaves a half file at OUT, nor a temporary behind.
#pragma once
#include <xxhash.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "storage/output_file.h"
#include "storage/pack_format.h"
#include "storage/sequential_writer.h"

namespace moe::pack {

struct RecordEncoding {
  bool zstd = false;
  int zstd_level = 3;
};

// One expert record ready to write. Built by any thread (encode_record is thread-safe).
struct EncodedRecord {
  std::vector<uint8_t> stored;  // the bytes to write (a zstd frame when compressed)
  uint64_t raw_bytes = 0;
  uint64_t xxh64 = 0;           // of `stored`
  bool compressed = false;
  double compress_seconds = 0;  // zstd time, for the convert-time verdict
};
// Compresses when asked and when it saves bytes (otherwise stores the raw record).
EncodedRecord encode_record(std::vector<uint8_t> raw, const RecordEncoding& enc);

class PackWriter {
 public:
  // Creates the temporary of `out`; throws when `out` may not be replaced (not a regular file,
  // or one of `inputs`: the files the pack is made from).
  PackWriter(const std::filesystem::path& out, uint32_t n_layers, std::span<const std::filesystem::path> inputs = {});
  ~PackWriter();  // the temporary is removed unless finish() succeeded
  PackWriter(const PackWriter&) = delete;
  PackWriter& operator=(const PackWriter&) = delete;

  // Appends a dense tensor. `local` lays its parts out from offset 0 of `bytes`
  // (place_matrix with a zero cursor); all dense tensors come before any expert record.
  void add_dense(const std::string& name, const MatrixLayout& local, const uint8_t* bytes);
  // Declares the record layout of an MoE layer (offsets relative to the decoded record).
  void add_expert_layer(const LayerLayout& layout);
  // Appends the next record: layers in ascending order, experts 0..n-1 within each.
  void add_record(uint32_t layer, uint32_t expert, const EncodedRecord& rec);

  // Writes manifest and table, then the header; fsyncs and renames to the final path.
  void finish(const nlohmann::json& manifest);

  uint64_t bytes_written() const { return out_file_.pos(); }

 private:
  void write(const void* p, size_t n) { out_file_.write(p, n); }
  void pad_to(uint64_t offset);
  uint64_t pos() const { return out_file_.pos(); }

  OutputFile file_;
  SequentialWriter out_file_;  // writes file_'s descriptor
  bool in_experts_ = false;
  Metadata meta_;
  XXH64_state_t* dense_hash_ = nullptr;
};

}  // namespace moe::pack
