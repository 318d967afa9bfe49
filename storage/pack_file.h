// A .moepack opened for reading: the file is memory-mapped, its metadata parsed and
// validated at open (storage/pack_format.h), its dense tensors viewed in place, and its
// expert records described through the ExpertCatalog interface the storage tiers use.
#pragma once
#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include "storage/expert_catalog.h"
#include "storage/mapped_file.h"
#include "storage/pack_format.h"

namespace moe {

class PackFile final : public ExpertCatalog {
 public:
  // Throws std::runtime_error "PATH: ..." on a bad magic, an unsupported version, a
  // truncated file, or any inconsistency of header, manifest or table.
  explicit PackFile(const std::filesystem::path& path);

  // ExpertCatalog
  const std::filesystem::path& path() const override { return file_.path(); }
  int n_layers() const override { return int(meta_.header.n_layers); }
  int n_experts(int layer) const override;
  const ExpertRecordRef& record(int layer, int expert) const override;
  void decode(int layer, int expert, const uint8_t* stored, uint8_t* raw, bool verify) const override;
  ExpertWeights views(int layer, int expert, const uint8_t* raw) const override;

  const pack::Metadata& metadata() const { return meta_; }
  const nlohmann::json& manifest() const { return meta_.manifest; }
  // An embedded file ("config.json", "tokenizer.json", ...); empty when absent.
  std::string embedded_file(const std::string& name) const;
  // A dense tensor viewed in the mapping; nullptr when absent.
  const pack::DenseEntry* find_dense(const std::string& name) const;
  WeightView dense_view(const pack::DenseEntry& e) const { return e.m.view(dense_base()); }
  // The stored bytes of a record inside the mapping.
  const uint8_t* stored(int layer, int expert) const { return file_.data() + record(layer, expert).offset; }
  // Checksum of a record's stored bytes; throws naming layer and expert on a mismatch.
  void verify_record(int layer, int expert) const;
  // What `moe verify` checks of a record: its checksum, and that a zstd frame decodes to exactly
  // raw_bytes, streamed through a small buffer (a crafted size allocates nothing).
  void verify_decode(int layer, int expert) const;
  // Checksum of the dense region; throws on a mismatch.
  void verify_dense() const;
  size_t file_bytes() const { return file_.size(); }
  // The open file behind the mapping: readers of the experts reopen it (not the path), so they
  // read the same inode as the metadata whatever happens to the path.
  FileSource source() const { return file_.source(); }

 private:
  const uint8_t* dense_base() const { return file_.data() + meta_.header.dense_offset; }
  size_t index(int layer, int expert) const;  // into refs_/meta_.records; throws when out of range

  MappedFile file_;
  pack::Metadata meta_;
  std::vector<ExpertRecordRef> refs_;
  std::vector<int> layer_slot_;  // layer -> index into meta_.layers, -1 for dense layers
  std::vector<size_t> first_record_;  // per layout: index of its expert 0
  std::map<std::string, size_t> dense_index_;
};

}  // namespace moe
